"""Baselines: the published classic ones (random labels, k-means and a full-covariance GMM, scikit-learn,
``n_init=10``) and the ones a practitioner picks for curved clusters (spectral clustering on a k-nearest-neighbour
graph, Ward agglomerative clustering, HDBSCAN), each with scikit-learn's usual settings."""

from __future__ import annotations

import time

import numpy as np

from nfmix.data import check_array
from nfmix.metrics import clustering_scores

BASELINES = ("random", "kmeans", "gmm")
# Spectral and Ward need memory quadratic in the number of rows, HDBSCAN time near it: for small sets (the 2D ones).
GRAPH_BASELINES = ("spectral", "ward", "hdbscan")


def baseline_estimator(method: str, n_clusters: int, seed: int = 0, n_init: int = 10):
    """The scikit-learn estimator behind a baseline, unfitted (None for random labels)."""
    from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans, SpectralClustering
    from sklearn.mixture import GaussianMixture

    estimators = {
        "random": lambda: None,
        "kmeans": lambda: KMeans(n_clusters, n_init=n_init, random_state=seed),
        "gmm": lambda: GaussianMixture(n_clusters, n_init=n_init, random_state=seed),
        # scikit-learn's k-NN affinity (10 neighbours), k-means on the embedding
        "spectral": lambda: SpectralClustering(
            n_clusters, affinity="nearest_neighbors", n_init=n_init, random_state=seed
        ),
        "ward": lambda: AgglomerativeClustering(n_clusters, linkage="ward"),
        # takes no K; its noise points (label -1) count as one more cluster in the metrics. copy: leave X as it
        # was (the default changes in scikit-learn 1.10)
        "hdbscan": lambda: HDBSCAN(copy=True),
    }
    if method not in estimators:
        raise ValueError(f"unknown baseline {method!r}; known: {', '.join(BASELINES + GRAPH_BASELINES)}")
    return estimators[method]()


def fit_baseline(method: str, X, n_clusters: int, seed: int = 0, n_init: int = 10):
    """``(labels, fitted estimator)`` of one baseline, seeded (the estimator is None for random labels)."""
    X = check_array(X)
    if len(X) < n_clusters:
        raise ValueError(f"X has {len(X)} rows, fewer than n_clusters={n_clusters}")
    estimator = baseline_estimator(method, n_clusters, seed, n_init)
    if estimator is None:
        return np.random.RandomState(seed).randint(n_clusters, size=len(X)), None
    return estimator.fit_predict(X), estimator


def baseline_labels(method: str, X, n_clusters: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Cluster labels of one baseline, seeded."""
    return fit_baseline(method, X, n_clusters, seed, n_init)[0]


def run_baseline(method: str, X, y, seed: int = 0, n_init: int = 10, n_clusters: int | None = None, **extra):
    """Run one baseline; returns ``(labels, metric row, fitted estimator)``; the row also records the seconds."""
    n_clusters = n_clusters or len(np.unique(y))
    started = time.perf_counter()
    labels, estimator = fit_baseline(method, X, n_clusters, seed=seed, n_init=n_init)
    row = clustering_scores(y, labels, **extra, method=method, seed=seed)
    row["seconds"] = time.perf_counter() - started
    return labels, row, estimator


def run_baselines(X, y, seed: int = 0, n_init: int | dict = 10, methods=BASELINES, models: dict | None = None, **extra):
    """All baselines; returns ``({method: labels}, [metric rows])``. ``n_init`` may be a dict per method.

    Pass a dict as ``models`` to get the fitted estimators too (e.g. the GMM, to draw its density).
    """
    labels, rows = {}, []
    for method in methods:
        restarts = n_init.get(method, 10) if isinstance(n_init, dict) else n_init
        labels[method], row, estimator = run_baseline(method, X, y, seed=seed, n_init=restarts, **extra)
        if models is not None:
            models[method] = estimator
        row["n_init"] = restarts if method in ("kmeans", "gmm", "spectral") else None  # the others take none
        rows.append(row)
    return labels, rows
