"""nfmix: clustering with mixtures of normalizing flows (masked autoregressive flows), on TensorFlow Probability."""

from nfmix.data import dataset_names, load_dataset
from nfmix.model import MAFMixture

__version__ = "0.1.0"
__all__ = ["MAFMixture", "load_dataset", "dataset_names", "__version__"]
