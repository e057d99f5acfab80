"""One place that imports TensorFlow and TFP, quietly, whichever way the user imported TensorFlow first.

nfmix needs no Keras of its own (its network and optimiser are plain ``tf.Variable`` code), so it works the
same whether ``tf.keras`` is Keras 3 or tf-keras; TFP picks tf-keras for its layers when Keras 3 is the default.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _faster_xla_compiles() -> None:
    """Use XLA's older CPU fusion emitters, which compile a first fit's loop in about 2/3 of the CPU time.

    Measured on TensorFlow 2.21 (2D loop: 0.83 s against 1.2 s of compile CPU; the 5 toy sets' default fits gave
    bitwise the same scores and labels). XLA reads the flag once, so it is set only before TensorFlow is imported,
    only on the version where it was measured (an unknown flag aborts the process), and never over the user's.
    """
    import sys
    from importlib import metadata

    flags = os.environ.get("XLA_FLAGS", "")
    if "tensorflow" in sys.modules or "xla_cpu_use_fusion_emitters" in flags:
        return
    try:
        version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        return
    if version.startswith("2.21."):
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_use_fusion_emitters=false".strip()


_faster_xla_compiles()

import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfd = tfp.distributions
tfb = tfp.bijectors

__all__ = ["tf", "tfp", "tfd", "tfb"]
