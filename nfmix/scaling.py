"""The per-feature rescaling inside :class:`~nfmix.MAFMixture`: each feature mapped to [0, 1] by its training range.

The flows' starts (locations in the unit box, base scale 0.1, the k-means scale floor) and their tanh networks
assume features near the unit square, as the paper's min-max-scaled data are. Fitting on ``(x - min) / range``
makes the model equivariant to shifting or scaling any feature, as a Gaussian mixture is, and it is the
identity on data already min-max scaled (every shipped 2D set). Densities stay those of the user's data:

    log p(x) = log q((x - min) / range) - sum_j log range_j.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nfmix.images import aligned_empty

# Rescaled in float64 blocks of this many values (8 MiB), so a large float32 data set never has a float64 copy:
# blocks of whole rows were 400 MiB each on raw pixels (784 features).
VALUES_PER_BLOCK = 2**20


@dataclasses.dataclass(frozen=True)
class FeatureScaling:
    """``x -> (x - data_min) / data_range`` per feature; a constant feature keeps range 1 (it is only shifted)."""

    data_min: np.ndarray
    data_range: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> FeatureScaling:
        """The training data's per-feature minimum and range, in float64 (exact for float32 data)."""
        low = X.min(axis=0).astype(np.float64)
        with np.errstate(over="ignore"):  # refused by name below
            spread = X.max(axis=0).astype(np.float64) - low
        if not np.isfinite(spread).all():
            column = int(np.flatnonzero(~np.isfinite(spread))[0])
            raise ValueError(
                f"feature {column} of X spans more than float64 holds ({low[column]:.3g} to "
                f"{X[:, column].max():.3g}); rescale X"
            )
        return cls(low, np.where(spread > 0, spread, 1.0))

    @classmethod
    def identity(cls, n_features: int) -> FeatureScaling:
        return cls(np.zeros(n_features), np.ones(n_features))

    @property
    def is_identity(self) -> bool:
        return bool((self.data_min == 0).all() and (self.data_range == 1).all())

    @property
    def log_det(self) -> float:
        """``log |d x' / d x|`` of the rescaling, added to every log-density of the rescaled data."""
        return float(-np.log(self.data_range).sum())

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``X`` rescaled, as float32 (the flows' arithmetic); float32 data that needs no rescaling is not copied."""
        if self.is_identity and X.dtype == np.float32:
            return X
        out = aligned_empty(X.shape, np.float32)  # 64-byte aligned: a fit hands it to TensorFlow in place
        rows = max(1, VALUES_PER_BLOCK // max(1, X.shape[1]))
        with np.errstate(over="ignore"):  # a far row becomes inf, which the caller refuses by name
            for start in range(0, len(X), rows):
                block = X[start : start + rows].astype(np.float64)
                block -= self.data_min
                block /= self.data_range
                out[start : start + rows] = block
        return out

    def inverse_transform(self, Z) -> np.ndarray:
        """Rescaled points back in the data's units, as float64."""
        return np.asarray(Z, np.float64) * self.data_range + self.data_min

    def bijector(self):
        """The rescaling's inverse as a TFP bijector (rescaled -> data units), for the fitted distribution."""
        from nfmix._tf import tfb

        return tfb.Chain([tfb.Shift(self.data_min.astype(np.float32)), tfb.Scale(self.data_range.astype(np.float32))])
