"""One place that imports TensorFlow and TFP, quietly, whichever way the user imported TensorFlow first.

nfmix needs no Keras of its own (its network and optimiser are plain ``tf.Variable`` code), so it works the
same whether ``tf.keras`` is Keras 3 or tf-keras; TFP picks tf-keras for its layers when Keras 3 is the default.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfd = tfp.distributions
tfb = tfp.bijectors

__all__ = ["tf", "tfp", "tfd", "tfb"]
