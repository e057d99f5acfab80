"""Nothing silent: each failure the estimator can meet gives a clear error, or a warning with a usable model.

One test per case; each is named after what it protects. Fits are tiny (a few hundred points, a few epochs).
"""

import copy
import pickle
import threading
import warnings

import numpy as np
import pytest

from nfmix import MAFMixture, load_dataset

# The set-up of the original reproducers: the old defaults (random starts, gradient ML, one restart, Adam 1e-3).
OLD = dict(init="random", algorithm="mle", n_init=1, learning_rate=1e-3)


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")[0]


def _assert_usable(model, X):
    proba = model.predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.isfinite(model.weights_).all() and np.isfinite(model.restart_losses_[model.best_restart_])


def test_a_nan_restart_is_never_kept_as_the_best(moons):
    model = MAFMixture(2, **{**OLD, "hidden_units": (4,), "epochs": 2, "n_init": 6, "learning_rate": 100.0},
                       random_state=3)
    with pytest.warns(RuntimeWarning, match="diverged"):
        model.fit(moons[:300])
    _assert_usable(model, moons[:300])


def test_the_kept_weights_are_never_nan_even_when_the_last_update_blew_up(moons):
    model = MAFMixture(2, **{**OLD, "hidden_units": (4,), "epochs": 5, "n_init": 2, "learning_rate": 10.0,
                             "batch_size": 32}, random_state=0)
    with pytest.warns(RuntimeWarning, match="NaN/inf"):
        model.fit(moons)
    _assert_usable(model, moons)
    assert all(np.isfinite(v).all() for v in model.params_.values())


@pytest.mark.parametrize("learning_rate", [-1e-2, 0.0])
def test_a_learning_rate_that_is_not_positive_is_refused(moons, learning_rate):
    with pytest.raises(ValueError, match="learning_rate"):
        MAFMixture(2, learning_rate=learning_rate).fit(moons)


@pytest.mark.parametrize("settings, X_scale", [
    ({"learning_rate": 1.0}, 1.0),  # full batch: climbs from 6 to 28
    ({"init": "kmeans"}, 1e-4),  # data far smaller than the flows' scale
])
def test_a_loss_that_rises_over_training_is_a_warning(moons, settings, X_scale):
    model = MAFMixture(2, **{**OLD, "epochs": 300, **settings}, tol=1e-9, random_state=0)
    with pytest.warns(RuntimeWarning, match="rose over training"):
        model.fit(moons * X_scale)
    assert not model.converged_  # tol stopped it, but a rising loss is no convergence


def test_constant_data_is_refused_before_fitting():
    with pytest.raises(ValueError, match="every feature of X is constant"):
        MAFMixture(2, init="kmeans").fit(np.ones((50, 2)))


@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_a_constant_feature_beside_varying_ones_still_gives_a_finite_model(moons, init):
    X = np.column_stack([moons, np.zeros(len(moons))])  # like the always-blank border pixels of digits
    model = MAFMixture(2, init=init, n_init=2, epochs=20, random_state=0).fit(X)
    _assert_usable(model, X)


def test_a_zero_base_scale_is_refused(moons):
    with pytest.raises(ValueError, match="base_scale"):
        MAFMixture(2, base_scale=0.0, init="random").fit(moons)


def test_points_beyond_float32_reach_are_refused_not_labelled(moons):
    model = MAFMixture(2, **OLD, epochs=5, random_state=0).fit(moons)
    with pytest.raises(ValueError, match="beyond what float32"):
        model.predict_proba(np.array([[1e19, 0.0]]))
    with pytest.raises(ValueError, match="beyond what float32"):
        MAFMixture(2).fit(np.vstack([moons, [[1e19, 0.0]]]))


def test_far_points_get_finite_probabilities_not_nan(moons):
    model = MAFMixture(2, **OLD, epochs=5, random_state=0).fit(moons)
    far = np.array([[1e12, 1e12], [-1e14, 3.0]])
    proba = model.predict_proba(far)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
    assert (model.score_samples(far) < -1e6).all()


def test_complex_input_is_refused(moons):
    with pytest.raises(ValueError, match="[Cc]omplex"):
        MAFMixture(2).fit(moons + 1j)


def test_a_fitted_model_pickles_and_deep_copies_after_predicting(moons):
    model = MAFMixture(2, **OLD, epochs=5, random_state=0).fit(moons)
    expected = model.predict_proba(moons)
    for restored in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(restored.predict_proba(moons), expected)


def test_a_model_pickles_inside_its_fit_callback_and_still_predicts(moons):
    pickled = []

    def callback(model, epoch):
        pickled.append(pickle.dumps(model))
        assert model.predict(moons[:5]).shape == (5,)  # pickling must not drop the live training state

    MAFMixture(2, **OLD, epochs=20, check_every=10, random_state=0).fit(moons, callback=callback)
    assert len(pickled) == 2


def test_a_fit_that_fails_leaves_the_model_unfitted(moons):
    from sklearn.exceptions import NotFittedError

    model = MAFMixture(2, **OLD, epochs=5, random_state=0).fit(moons)
    with pytest.raises(ValueError):
        model.fit(np.ones((50, 2)))  # refused: no spread
    with pytest.raises(NotFittedError):
        model.predict(moons)


@pytest.mark.parametrize("name", ["tol", "min_weight"])
def test_a_nan_tolerance_or_weight_floor_is_refused(moons, name):
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        MAFMixture(2, **{name: float("nan")}).fit(moons)


def test_four_threads_fit_models_of_one_architecture_at_once(moons):
    settings = dict(OLD, hidden_units=(5,), n_init=2, epochs=30, check_every=10)
    expected = MAFMixture(2, **settings, random_state=0).fit(moons).score_samples(moons)
    results, errors = {}, []

    def fit(seed):
        try:
            results[seed] = MAFMixture(2, **settings, random_state=seed).fit(moons).score_samples(moons)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=fit, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(results) == [0, 1, 2, 3]
    np.testing.assert_array_equal(results[0], expected)  # the same seed gives the same model under threads
    assert not np.allclose(results[1], results[2])


@pytest.mark.parametrize("settings, error, message", [
    ({"activation": "swish"}, ValueError, "activation must be one of 'tanh'"),
    ({"activation": None}, ValueError, "activation must be one of"),
    ({"check_every": -5}, ValueError, "check_every == -5, must be >= 1"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate must be an instance of"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ({"hidden_units": (4, 0)}, ValueError, "hidden_units"),
    ({"min_weight": 1.5}, ValueError, "min_weight"),
    ({"reseed": "yes"}, TypeError, "reseed must be True or False"),
])
def test_bad_hyperparameters_are_named_before_any_work(moons, settings, error, message):
    with pytest.raises(error, match=message):
        MAFMixture(2, **settings).fit(moons)


def test_no_warning_on_a_healthy_fit(moons):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        MAFMixture(2, n_init=2, epochs=50, random_state=0).fit(moons)
