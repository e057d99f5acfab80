"""nfmix: clustering with mixtures of normalizing flows (masked autoregressive flows), on TensorFlow Probability.

TensorFlow loads on first fit or prediction, so the data layer, presets and metrics import quickly on their own.
"""

from nfmix.data import dataset_names, load_dataset

__version__ = "0.2.0"
__all__ = ["MAFMixture", "load_dataset", "dataset_names", "__version__"]


def __getattr__(name):
    if name == "MAFMixture":
        from nfmix.model import MAFMixture

        return MAFMixture
    raise AttributeError(f"module 'nfmix' has no attribute {name!r}")
