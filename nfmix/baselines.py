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


def baseline_labels(method: str, X, n_clusters: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Cluster labels of one baseline, seeded."""
    X = check_array(X)
    if len(X) < n_clusters:
        raise ValueError(f"X has {len(X)} rows, fewer than n_clusters={n_clusters}")
    if method == "random":
        return np.random.RandomState(seed).randint(n_clusters, size=len(X))
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters, n_init=n_init, random_state=seed).fit_predict(X)
    if method == "gmm":
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(n_clusters, n_init=n_init, random_state=seed).fit(X).predict(X)
    if method == "spectral":  # scikit-learn's k-NN affinity (10 neighbours), k-means on the embedding
        from sklearn.cluster import SpectralClustering

        return SpectralClustering(n_clusters, affinity="nearest_neighbors", n_init=n_init,
                                  random_state=seed).fit_predict(X)
    if method == "ward":
        from sklearn.cluster import AgglomerativeClustering

        return AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(X)
    if method == "hdbscan":  # takes no K; its noise points (label -1) count as one more cluster in the metrics
        from sklearn.cluster import HDBSCAN

        return HDBSCAN(copy=True).fit_predict(X)  # copy: leave X as it was (the default changes in 1.10)
    raise ValueError(f"unknown baseline {method!r}; known: {', '.join(BASELINES + GRAPH_BASELINES)}")


def run_baseline(method: str, X, y, seed: int = 0, n_init: int = 10, n_clusters: int | None = None, **extra):
    """Run one baseline; returns ``(labels, metric row)``; the row also records the method, seed and seconds."""
    n_clusters = n_clusters or len(np.unique(y))
    started = time.perf_counter()
    labels = baseline_labels(method, X, n_clusters, seed=seed, n_init=n_init)
    row = clustering_scores(y, labels, **extra, method=method, seed=seed)
    row["seconds"] = time.perf_counter() - started
    return labels, row


def run_baselines(X, y, seed: int = 0, n_init: int | dict = 10, methods=BASELINES, **extra):
    """All baselines; returns ``({method: labels}, [metric rows])``. ``n_init`` may be a dict per method."""
    labels, rows = {}, []
    for method in methods:
        restarts = n_init.get(method, 10) if isinstance(n_init, dict) else n_init
        labels[method], row = run_baseline(method, X, y, seed=seed, n_init=restarts, **extra)
        row["n_init"] = restarts if method in ("kmeans", "gmm", "spectral") else None  # the others take none
        rows.append(row)
    return labels, rows
