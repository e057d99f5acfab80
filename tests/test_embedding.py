"""The embedding pipeline: scikit-learn steps, the on-disk cache keyed by data and parameters, the notebook."""

import numpy as np
import pytest

pytest.importorskip("umap")

from sklearn.cluster import KMeans  # noqa: E402

from nfmix import load_dataset  # noqa: E402
from nfmix.embedding import UMAPEmbedding, embedding_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_dataset("digits", subsample=400, seed=0)
    return X, y


def _count_fits(monkeypatch):
    calls = []
    original = UMAPEmbedding.fit_transform
    monkeypatch.setattr(UMAPEmbedding, "fit_transform", lambda self, X, y=None: calls.append(1) or original(self, X))
    return calls


@pytest.mark.slow  # UMAP fits (and numba compiles its code on first use)
def test_the_embedding_is_cached_by_data_and_parameters(tmp_path, monkeypatch, digits):
    X, _ = digits
    calls = _count_fits(monkeypatch)
    first = embedding_pipeline(n_components=3, random_state=0, memory=str(tmp_path)).fit_transform(X)
    again = embedding_pipeline(n_components=3, random_state=0, memory=str(tmp_path)).fit_transform(X)
    assert len(calls) == 1 and np.array_equal(first, again)  # one process, the cached UMAP output: bit for bit
    assert first.shape == (len(X), 3)
    # Min-max scaled, each column to [0, 1], but in float32: MinMaxScaler computes x * scale_ + min_ (scale_ = 1 /
    # range), rounding at each step, so an extreme can land a few ulps off (1.0000001, 1 ulp, on one CI CPU); 8 ulps.
    ulps = 8 * np.finfo(first.dtype).eps
    np.testing.assert_allclose(first.min(axis=0), 0, rtol=0, atol=ulps)
    np.testing.assert_allclose(first.max(axis=0), 1, rtol=0, atol=ulps)
    embedding_pipeline(n_components=3, random_state=1, memory=str(tmp_path)).fit_transform(X)  # another seed
    embedding_pipeline(n_components=3, random_state=0, memory=str(tmp_path)).fit_transform(X[:-1])  # other data
    assert len(calls) == 3


@pytest.mark.slow
def test_a_clusterer_ends_the_pipeline_and_reuses_the_embedding(tmp_path, monkeypatch, digits):
    X, y = digits
    calls = _count_fits(monkeypatch)
    Z = embedding_pipeline(random_state=0, memory=str(tmp_path)).fit_transform(X)
    pipeline = embedding_pipeline(KMeans(10, n_init=2, random_state=0), random_state=0, memory=str(tmp_path))
    labels = pipeline.fit_predict(X)
    assert len(calls) == 1 and list(pipeline.named_steps) == ["pca", "umap", "scale", "cluster"]
    assert np.array_equal(labels, KMeans(10, n_init=2, random_state=0).fit_predict(Z))


def test_a_missing_umap_says_how_to_install_it(monkeypatch, digits):
    import builtins

    real_import = builtins.__import__

    def without_umap(name, *args, **kwargs):
        if name == "umap":
            raise ModuleNotFoundError("No module named 'umap'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_umap)
    with pytest.raises(ModuleNotFoundError, match=r"nfmix\[embedding\]"):
        embedding_pipeline(random_state=0, memory=None).fit_transform(digits[0])
