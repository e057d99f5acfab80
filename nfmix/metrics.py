"""External clustering metrics, all in one call, as one tidy row so every model lines up in one table."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty clustering")
    return y_true, y_pred


def contingency(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """Counts of (true label, cluster) pairs: rows are labels, columns clusters; ``normalize`` makes rows sum to 1."""
    table = contingency_matrix(*_labels(y_true, y_pred))
    return table / table.sum(axis=1, keepdims=True) if normalize else table


def purity(y_true, y_pred) -> float:
    """Fraction of points whose cluster's majority label is their own label."""
    table = contingency(y_true, y_pred)
    return float(table.max(axis=0).sum() / table.sum())


def hungarian_accuracy(y_true, y_pred) -> float:
    """Accuracy under the best one-to-one matching of clusters to labels (clusters and labels may differ in number)."""
    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def clustering_scores(y_true, y_pred, **extra) -> dict:
    """Purity, ARI, NMI and Hungarian accuracy as one dict; ``extra`` (dataset, method, seed, ...) is put in front."""
    y_true, y_pred = _labels(y_true, y_pred)
    return {
        **extra,
        "purity": purity(y_true, y_pred),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "accuracy": hungarian_accuracy(y_true, y_pred),
        "n_clusters": int(len(np.unique(y_pred))),
    }
