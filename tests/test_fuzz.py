"""Property-based: whatever arrays and settings a user passes, the estimator raises a clear ValueError or
TypeError, or returns finite probabilities that sum to 1 and labels in range. Never NaN, never a crash."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nfmix import MAFMixture

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e3, 1e3),
    st.sampled_from([0.0, 1e-30, -1e-30, 1e19, -1e19, 3.4e38]),
)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=40)
NUMBERS = hnp.arrays(np.float64, st.tuples(st.integers(4, 60), st.integers(1, 4)), elements=st.floats(-5, 5))
MAGNITUDES = st.sampled_from([1e-6, 1e-3, 1.0, 1e3, 1e6])
ARRAYS = st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32]), SHAPES, elements=FLOATS),
    hnp.arrays(st.sampled_from([np.int64, np.int8, np.bool_]), SHAPES),
    NUMBERS,
    # offset and scaled per feature, from 1e-6 to 1e6: the rescaling inside fit must absorb both
    st.builds(lambda X, scale, offset: X * scale + offset, NUMBERS, MAGNITUDES, MAGNITUDES),
    NUMBERS.map(lambda X: X.astype(object)),  # numbers in an object array are accepted, as in scikit-learn
    NUMBERS.map(lambda X: X.astype(str)),  # strings of digits never are
    NUMBERS.map(lambda X: X.astype(str).astype(object)),
)
HYPERPARAMETERS = st.fixed_dictionaries(
    {},
    optional={
        "n_components": st.one_of(st.integers(-1, 4), st.just(2.5), st.booleans()),
        "hidden_units": st.sampled_from([(3,), (2, 2), (), (0,), "wide", (3.5,)]),
        "n_init": st.one_of(st.integers(0, 2), st.booleans()),
        "epochs": st.one_of(st.integers(1, 3), st.booleans()),
        "init": st.sampled_from(["random", "kmeans", "pca"]),
        "algorithm": st.sampled_from(["mle", "em_soft", "em_hard", "vi"]),
        "learning_rate": st.one_of(st.floats(-1.0, 10.0), st.just(float("nan")), st.just("fast"), st.booleans()),
        "batch_size": st.one_of(st.integers(0, 64), st.booleans()),
        "base_scale": st.floats(-1.0, 2.0),
        "min_weight": st.one_of(st.none(), st.floats(-0.5, 1.5)),
        "activation": st.sampled_from(["tanh", "relu", "swish", None]),
        "check_every": st.one_of(st.none(), st.integers(-2, 3)),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=ARRAYS, hyperparameters=HYPERPARAMETERS)
def test_every_call_raises_a_clear_error_or_returns_finite_probabilities(X, hyperparameters):
    model = MAFMixture(
        **{"n_components": 2, "n_init": 1, "epochs": 3, "jit_compile": False, "random_state": 0, **hyperparameters}
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings are allowed; silence is what this test rules out
            model.fit(X)
            proba = model.predict_proba(X)
            labels = model.predict(X)
    except (ValueError, TypeError) as error:
        assert str(error), "an error must say what is wrong"
        return
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert labels.min() >= 0 and labels.max() < model.n_components
    # What the audit found accepted: a boolean count or rate, and text parsed as numbers.
    assert not any(isinstance(v, bool) for k, v in hyperparameters.items() if k != "init"), "a boolean was accepted"
    assert np.asarray(X).dtype.kind not in "US" and not any(isinstance(v, str) for v in np.ravel(X)), (
        "strings were parsed as numbers"
    )
