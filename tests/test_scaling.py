"""The per-feature rescaling of nfmix.scaling: blocks of values, not rows, and an array TensorFlow can use in place."""

import numpy as np

from nfmix import scaling
from nfmix.scaling import FeatureScaling


def test_blocked_rescaling_is_the_float64_formula_across_block_edges(monkeypatch):
    monkeypatch.setattr(scaling, "VALUES_PER_BLOCK", 7 * 13)  # 13 rows of 7 features a block: 5 blocks and a rest
    X = np.random.RandomState(0).normal(3.0, 40.0, size=(71, 7)).astype(np.float32)
    fitted = FeatureScaling.fit(X)
    expected = ((X.astype(np.float64) - fitted.data_min) / fitted.data_range).astype(np.float32)
    out = fitted.transform(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_a_block_holds_at_least_one_row_of_a_wide_data_set(monkeypatch):
    monkeypatch.setattr(scaling, "VALUES_PER_BLOCK", 4)
    X = np.arange(30, dtype=np.float32).reshape(3, 10)
    np.testing.assert_allclose(FeatureScaling.fit(X).transform(X), np.repeat([[0.0], [0.5], [1.0]], 10, axis=1))


def test_the_rescaled_array_starts_on_a_64_byte_boundary():
    X = np.random.RandomState(1).uniform(size=(1000, 5)).astype(np.float32)
    out = FeatureScaling.fit(X).transform(X)
    assert out.ctypes.data % 64 == 0 and out.flags.c_contiguous
