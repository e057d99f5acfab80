"""A quiet start for the command line: TensorFlow's C++ start-up lines (absl's notice, the CUDA probes, which on a
machine without a GPU include an ``E0000 ... failed call to cuInit`` ERROR) go to a temporary file while
TensorFlow loads and finds its devices. They are shown only if that fails. nfmix's own warnings come later and
are untouched. The notebooks strip the same lines from their outputs (nfmix.notebook_outputs).
"""

from __future__ import annotations

import os
import sys
import tempfile


def load_tensorflow_quietly() -> None:
    """Import TensorFlow (through nfmix._tf) and initialise its devices with file descriptor 2 sent aside."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            from nfmix._tf import tf

            tf.config.list_logical_devices()  # the CUDA probe runs here, not at import
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
