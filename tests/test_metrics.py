import itertools

import numpy as np
import pytest

from nfmix import load_dataset
from nfmix.baselines import baseline_labels, run_baselines
from nfmix.metrics import clustering_scores, contingency, hungarian_accuracy, purity

LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])


def test_perfect_and_permuted_clusterings_score_one():
    for predicted in (LABELS, np.array([2, 2, 2, 0, 0, 0, 1, 1, 1, 1])):
        row = clustering_scores(LABELS, predicted)
        assert row["purity"] == row["accuracy"] == 1.0
        assert row["ari"] == pytest.approx(1.0) and row["nmi"] == pytest.approx(1.0)


def test_all_in_one_cluster():
    row = clustering_scores(LABELS, np.zeros_like(LABELS))
    assert row["purity"] == pytest.approx(0.4) and row["accuracy"] == pytest.approx(0.4)
    assert row["ari"] == pytest.approx(0.0) and row["nmi"] == pytest.approx(0.0)
    assert row["n_clusters"] == 1


def test_random_labels_score_near_chance():
    rng = np.random.RandomState(0)
    truth = rng.randint(5, size=20000)
    row = clustering_scores(truth, rng.randint(5, size=20000))
    assert abs(row["ari"]) < 0.01 and row["nmi"] < 0.01 and row["accuracy"] < 0.22


def _brute_force_accuracy(y_true, y_pred):
    labels, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    # every one-to-one map of clusters onto labels (or of labels onto clusters when there are fewer clusters)
    if len(clusters) <= len(labels):
        for image in itertools.permutations(labels, len(clusters)):
            best = max(best, sum(((y_pred == c) & (y_true == t)).sum() for c, t in zip(clusters, image)))
    else:
        for image in itertools.permutations(clusters, len(labels)):
            best = max(best, sum(((y_pred == c) & (y_true == t)).sum() for t, c in zip(labels, image)))
    return best / len(y_true)


@pytest.mark.parametrize("n_labels, n_clusters", [(3, 3), (4, 4), (3, 5), (5, 2)])
def test_hungarian_accuracy_equals_brute_force(n_labels, n_clusters):
    rng = np.random.RandomState(n_labels * 10 + n_clusters)
    for _ in range(5):
        y_true = rng.randint(n_labels, size=60)
        y_pred = np.where(rng.rand(60) < 0.6, y_true % n_clusters, rng.randint(n_clusters, size=60))
        assert hungarian_accuracy(y_true, y_pred) == pytest.approx(_brute_force_accuracy(y_true, y_pred))


def test_contingency_counts_and_row_normalisation():
    predicted = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 0])
    table = contingency(LABELS, predicted)
    assert table.tolist() == [[2, 1, 0], [0, 3, 0], [1, 0, 3]]
    np.testing.assert_allclose(contingency(LABELS, predicted, normalize=True).sum(axis=1), 1.0)
    assert purity(LABELS, predicted) == pytest.approx(0.8)


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="10 labels but y_pred has 3"):
        clustering_scores(LABELS, [0, 1, 2])


def test_baselines_are_seeded_and_return_one_tidy_row_each():
    X, y = load_dataset("digits", pca=20)
    labels, rows = run_baselines(X, y, seed=0, n_init=2, dataset="digits")
    assert [r["method"] for r in rows] == ["random", "kmeans", "gmm"]
    assert all(r["dataset"] == "digits" and {"purity", "ari", "nmi", "accuracy", "seconds"} <= set(r) for r in rows)
    by_method = {r["method"]: r for r in rows}
    assert by_method["kmeans"]["ari"] > 0.4 and abs(by_method["random"]["ari"]) < 0.02
    np.testing.assert_array_equal(labels["kmeans"], baseline_labels("kmeans", X, 10, seed=0, n_init=2))


def test_unknown_baseline_is_refused():
    with pytest.raises(ValueError, match="unknown baseline 'dbscan'"):
        baseline_labels("dbscan", np.zeros((5, 2)), 2)


def test_graph_baselines_follow_the_moons_better_than_kmeans():
    from sklearn.metrics import adjusted_rand_score

    from nfmix.baselines import GRAPH_BASELINES
    from nfmix.data import load_dataset

    X, y = load_dataset("moons")
    labels, rows = run_baselines(X, y, seed=0, methods=GRAPH_BASELINES)
    assert [row["method"] for row in rows] == list(GRAPH_BASELINES)
    kmeans = baseline_labels("kmeans", X, 2, seed=0)
    assert adjusted_rand_score(y, labels["spectral"]) > adjusted_rand_score(y, kmeans) + 0.2  # a k-NN graph bends
    assert labels["ward"].max() == 1 and rows[1]["n_init"] is None
    assert labels["hdbscan"].min() >= -1  # -1 marks noise, scored as its own cluster
