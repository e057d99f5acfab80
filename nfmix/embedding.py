"""Clustering in a neighbourhood embedding: PCA -> UMAP -> min-max scaling -> a clusterer, as one scikit-learn
``Pipeline`` (the N2D recipe, McConville et al., ICPR 2020, with the GMM replaceable by a mixture of flows).

UMAP is the slow step (about a minute on 70,000 images with 2 cores), so the pipeline caches every fitted
transformer on disk through scikit-learn's own ``Pipeline(memory=...)``: the cache key is the input data and every
parameter of the step (``random_state`` included), so refitting with another clusterer, or rerunning a notebook,
reuses the embedding, and any change of data or parameter computes a new one.

``umap-learn`` is an optional dependency: ``pip install "nfmix[embedding]"``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

# The set-up the embedding study measured (docs/studies/embedding.md): PCA-50, then a 10-D UMAP with
# 20 neighbours and min_dist 0 (tight clusters, as N2D uses).
EMBEDDING_DEFAULTS = dict(pca=50, n_components=10, n_neighbors=20, min_dist=0.0)


def cache_dir() -> Path:
    """Where fitted embeddings are kept: ``$NFMIX_CACHE`` if set, else ``~/.cache/nfmix``."""
    return Path(os.environ.get("NFMIX_CACHE") or Path.home() / ".cache" / "nfmix")


class UMAPEmbedding(TransformerMixin, BaseEstimator):
    """``umap.UMAP`` with its first-use chatter silenced; parameters as UMAP's (``random_state`` fixes it).

    UMAP warns, on every seeded fit, that a seed turns off its parallelism: true, and noise in a notebook.
    """

    def __init__(self, n_components=10, n_neighbors=20, min_dist=0.0, metric="euclidean", random_state=None):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state

    def fit(self, X, y=None):
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None):
        umap = _import_umap()
        self.umap_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
            embedded = self.umap_.fit_transform(X)
        self.n_features_in_ = np.shape(X)[1]
        return embedded

    def transform(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "umap_")
        return self.umap_.transform(X)


def _import_umap():
    import nfmix._tf  # noqa: F401  umap imports TensorFlow (for ParametricUMAP): let it find TF already quiet

    try:
        import umap
    except ModuleNotFoundError as missing:
        raise ModuleNotFoundError('the embedding needs umap-learn: pip install "nfmix[embedding]"') from missing
    return umap


def embedding_pipeline(
    clusterer=None,
    *,
    pca=EMBEDDING_DEFAULTS["pca"],
    n_components=EMBEDDING_DEFAULTS["n_components"],
    n_neighbors=EMBEDDING_DEFAULTS["n_neighbors"],
    min_dist=EMBEDDING_DEFAULTS["min_dist"],
    random_state=None,
    memory="default",
) -> Pipeline:
    """PCA -> UMAP -> min-max scaling -> ``clusterer``, with the fitted transformers cached on disk.

    Parameters
    ----------
    clusterer : estimator or None, default=None
        The last step, e.g. ``MAFMixture(10)`` or ``GaussianMixture(10)``: ``pipeline.fit_predict(X)`` clusters.
        None ends the pipeline at the scaler: ``pipeline.fit_transform(X)`` is the embedding (cached).
    pca : int or None, default=50
        Principal components before UMAP (speeds up its neighbour search on pixels); None skips PCA.
    n_components, n_neighbors, min_dist : default=10, 20, 0.0
        UMAP's embedding dimension, neighbourhood size and minimum distance.
    random_state : int or None, default=None
        Seeds PCA and UMAP: one seed is one embedding.
    memory : "default", str, joblib.Memory or None, default="default"
        scikit-learn's ``Pipeline(memory=...)``; "default" is :func:`cache_dir`, None caches nothing.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``"pca"``, ``"umap"``, ``"scale"`` and (with a clusterer) ``"cluster"``. Get the training data's
        embedding from ``pipeline[:-1].fit_transform(X)`` (a cache hit), not ``transform``: UMAP's ``transform``
        places points anew, near but not at their fitted positions.
    """
    if memory == "default":
        from joblib import Memory

        memory = Memory(cache_dir() / "embeddings", verbose=0)
    steps = [
        ("pca", PCA(pca, random_state=random_state) if pca else "passthrough"),
        (
            "umap",
            UMAPEmbedding(
                n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist, random_state=random_state
            ),
        ),
        ("scale", MinMaxScaler()),
    ]
    if clusterer is not None:
        steps.append(("cluster", clusterer))
    return Pipeline(steps, memory=memory)
