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
OLD = dict(base="diag", init="random", algorithm="mle", n_init=1, learning_rate=1e-3)


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")[0]


def _assert_usable(model, X):
    proba = model.predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.isfinite(model.weights_).all() and np.isfinite(model.restart_losses_[model.best_restart_])


def test_a_nan_restart_is_never_kept_as_the_best(moons):
    model = MAFMixture(
        2, **{**OLD, "hidden_units": (4,), "epochs": 2, "n_init": 6, "learning_rate": 100.0}, random_state=3
    )
    with pytest.warns(RuntimeWarning, match="diverged"):
        model.fit(moons[:300])
    _assert_usable(model, moons[:300])


def test_the_kept_weights_are_never_nan_even_when_the_last_update_blew_up(moons):
    model = MAFMixture(
        2,
        **{**OLD, "hidden_units": (4,), "epochs": 5, "n_init": 2, "learning_rate": 10.0, "batch_size": 32},
        random_state=0,
    )
    with pytest.warns(RuntimeWarning, match="NaN/inf"):
        model.fit(moons)
    _assert_usable(model, moons)
    assert all(np.isfinite(v).all() for v in model.params_.values())


@pytest.mark.parametrize("learning_rate", [-1e-2, 0.0])
def test_a_learning_rate_that_is_not_positive_is_refused(moons, learning_rate):
    with pytest.raises(ValueError, match="learning_rate"):
        MAFMixture(2, learning_rate=learning_rate).fit(moons)


@pytest.mark.parametrize(
    "settings",
    [
        {"learning_rate": 1.0},  # full batch: climbs over the epochs
        {"learning_rate": 1.0, "batch_size": 32, "epochs": 3},  # blows up within the first epoch
    ],
)
def test_a_loss_that_rises_over_training_is_a_warning(moons, settings):
    model = MAFMixture(2, **{**OLD, "epochs": 300, **settings}, tol=1e-9, random_state=0)
    with pytest.warns(RuntimeWarning, match="rose over training"):
        model.fit(moons)
    assert not model.converged_  # tol stopped it, but a rising loss is no convergence
    assert model.restart_losses_[model.best_restart_] > model.history_["start_loss"]


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
        model.predict_proba(np.array([[1e300, 0.0]]))  # inf once rescaled to float32
    with pytest.raises(ValueError, match="spans more than float64 holds"):
        MAFMixture(2).fit(np.vstack([moons, [[1.7e308, 0.0], [-1.7e308, 1.0]]]))


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


@pytest.mark.parametrize(
    "settings, error, message",
    [
        ({"activation": "swish"}, ValueError, "activation must be one of 'tanh'"),
        ({"activation": None}, ValueError, "activation must be one of"),
        ({"check_every": -5}, ValueError, "check_every == -5, must be >= 1"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate must be an instance of"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
        ({"hidden_units": (4, 0)}, ValueError, "hidden_units"),
        ({"min_weight": 1.5}, ValueError, "min_weight"),
        ({"reseed": "yes"}, TypeError, "reseed must be True or False"),
        ({"rescale": "standard"}, ValueError, "rescale must be 'minmax' or None; got 'standard'"),
        ({"rescale": False}, ValueError, "rescale must be 'minmax' or None; got False"),
    ],
)
def test_bad_hyperparameters_are_named_before_any_work(moons, settings, error, message):
    with pytest.raises(error, match=message):
        MAFMixture(2, **settings).fit(moons)


def test_no_warning_on_a_healthy_fit(moons):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        MAFMixture(2, n_init=2, epochs=50, random_state=0).fit(moons)


# ---------------------------------------------------------------------------------------------- issue 23
SMALL_FIT = dict(base="diag", n_init=2, epochs=60, random_state=0)


@pytest.fixture(scope="module")
def unshifted(moons):
    return MAFMixture(2, **SMALL_FIT).fit(moons)


@pytest.mark.parametrize(
    "shift, scale", [(10.0, 1.0), (0.0, 100.0), (0.0, np.array([1e3, 1e-3])), (-1e3, np.array([1e6, 1e-6]))]
)
def test_the_fit_does_not_depend_on_where_the_data_sit_or_their_units(moons, unshifted, shift, scale):
    from sklearn.metrics import adjusted_rand_score

    # In float64 (moons * 10.0 would stay float32 and lose up to 4 ulps), rescaling gives back moons' float32 data
    # bit for bit, but for the last case: an offset 1e9 times the spread moves some values 1 ulp; hence tolerances.
    moved = moons.astype(np.float64) * scale + shift
    model = MAFMixture(2, **SMALL_FIT).fit(moved)
    assert adjusted_rand_score(unshifted.labels_, model.labels_) >= 0.99
    # A density in other units is the same density times the Jacobian of the change of units.
    log_det = -np.log(np.broadcast_to(scale, (2,))).sum()
    np.testing.assert_allclose(model.score(moved), unshifted.score(moons) + log_det, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(model.lower_bound_, unshifted.lower_bound_ + log_det, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(
        model.score_samples(moved[:50]), unshifted.score_samples(moons[:50]) + log_det, rtol=1e-6, atol=1e-5
    )
    np.testing.assert_allclose(model.data_min_, moved.min(axis=0))
    drawn, labels = model.sample(20, random_state=1)  # the same draws, in the moved data's units
    reference, reference_labels = unshifted.sample(20, random_state=1)
    np.testing.assert_array_equal(labels, reference_labels)
    np.testing.assert_allclose((drawn - shift) / scale, reference, atol=1e-3)


def test_rescale_none_is_the_min_max_fit_where_that_rescaling_is_the_identity(moons, unshifted):
    # moons spans exactly [0, 1] in each column, so the two settings must train on the same numbers.
    model = MAFMixture(2, **SMALL_FIT, rescale=None).fit(moons)
    np.testing.assert_array_equal(model.labels_, unshifted.labels_)
    np.testing.assert_allclose(model.score(moons), unshifted.score(moons), rtol=1e-6)


def test_rescale_none_trains_the_flows_in_the_data_s_own_units(moons):
    moved = moons.astype(np.float64) * np.array([100.0, 3.0]) + 7.0
    model = MAFMixture(2, **SMALL_FIT, rescale=None).fit(moved)
    np.testing.assert_array_equal(model.data_min_, np.zeros(2))
    np.testing.assert_array_equal(model.data_range_, np.ones(2))
    loc = model.params_["loc"]  # k-means centroids, so inside the data's box in its own units, not in [0, 1]
    assert (loc >= moved.min(axis=0)).all() and (loc <= moved.max(axis=0)).all() and loc[:, 0].min() > 7.0
    assert np.isfinite(model.score(moved))


@pytest.mark.parametrize(
    "name",
    [
        "n_components",
        "n_init",
        "n_blocks",
        "epochs",
        "batch_size",
        "m_step_epochs",
        "learning_rate",
        "base_scale",
        "verbose",
        "min_weight",
        "tol",
        "check_every",
        "init_epochs",
    ],
)
def test_a_boolean_is_refused_where_a_number_is_meant(moons, name):
    with pytest.raises(TypeError, match=f"{name} must be a number, not a boolean"):
        MAFMixture(**{"n_components": 2, name: True}).fit(moons)


@pytest.mark.parametrize(
    "make",
    [
        lambda X: X.astype(str),  # unicode digits
        lambda X: X.astype(str).astype(object),
        lambda X: __import__("pandas").DataFrame(X.astype(str), columns=["a", "b"]),
        lambda X: X.astype(str).tolist(),
    ],
)
def test_strings_are_refused_even_when_they_spell_numbers(moons, make):
    with pytest.raises(ValueError, match="X holds strings"):
        MAFMixture(2).fit(make(moons))


def test_an_object_array_of_numbers_is_fitted_like_the_numbers(moons, unshifted):
    model = MAFMixture(2, **SMALL_FIT).fit(moons.astype(object))
    np.testing.assert_array_equal(model.labels_, unshifted.labels_)  # the same float32 data, the same process
    with pytest.raises(ValueError, match="X holds strings"):
        model.predict(moons.astype(str))


def test_float32_data_whose_spread_was_rounded_away_is_a_warning(moons):
    with pytest.warns(RuntimeWarning, match="float32 steps.*Centre X in float64"):
        MAFMixture(2, n_init=1, epochs=2, random_state=0).fit((moons + 1e6).astype(np.float32))


def test_a_learning_rate_that_underflows_float32_is_refused(moons):
    with pytest.raises(ValueError, match="learning_rate=1e-50 underflows float32"):
        MAFMixture(2, learning_rate=1e-50).fit(moons)


def test_a_learning_rate_lost_in_rounding_is_a_warning(moons):
    with pytest.warns(RuntimeWarning, match="changed no network weight"):
        MAFMixture(2, n_init=1, epochs=5, learning_rate=1e-30, random_state=0).fit(moons)


def test_a_base_scale_whose_square_underflows_is_refused(moons):
    with pytest.raises(ValueError, match="base_scale=1e-30 is too small"):
        MAFMixture(2, init="random", base_scale=1e-30).fit(moons)


def test_an_infinite_final_loss_stays_infinite_so_the_restart_is_never_kept(moons):
    from nfmix.fitting import FitLoop
    from nfmix.flows import MixtureSpec
    from nfmix.initialise import initial_values
    from nfmix.train import Trainer

    spec = MixtureSpec(2, 2, 2, (4,))
    values = initial_values(spec, moons, "random", 0.1, np.random.RandomState(0))
    values[1][0] = 1e30  # restart 0's bases so far away that every point has zero density
    trainer = Trainer(spec, values, 1e-2, 4000)
    config = MAFMixture(2)._fit_config(len(moons), has_partition=False)
    losses = FitLoop(config, trainer, moons, np.random.RandomState(0)).final_losses()
    assert losses[0] == np.inf and np.isfinite(losses[1])


def test_a_callback_that_cannot_be_called_is_refused_before_any_work(moons):
    with pytest.raises(TypeError, match="callback must be a function"):
        MAFMixture(2).fit(moons, callback=5)
    for bad, error in ((0, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="callback_every"):
            MAFMixture(2).fit(moons, callback=print, callback_every=bad)


def test_a_spectral_start_on_too_few_rows_is_refused_clearly(moons):
    with pytest.raises(ValueError, match='init="spectral" builds a 10-nearest-neighbour graph'):
        MAFMixture(2, init="spectral").fit(moons[:8])


def test_fitting_a_dataframe_warns_nothing_about_feature_names(moons):
    import pandas as pd

    frame = pd.DataFrame(moons, columns=["x", "y"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = MAFMixture(2, n_init=1, epochs=5, random_state=0).fit(frame)
        model.predict(frame)
    assert list(model.feature_names_in_) == ["x", "y"]


def test_a_far_outlier_that_squeezes_a_feature_into_few_float32_steps_is_a_warning(moons):
    X = np.vstack([moons[:300].astype(np.float64), [[-1e6, 0.5]]])  # the bulk lands within ~1e-6 of 1
    with pytest.warns(RuntimeWarning, match="feature 0 of X: its middle half spans only"):
        MAFMixture(2, n_init=1, epochs=2, random_state=0).fit(X)


def test_a_spectral_start_is_checked_against_the_rows_left_after_the_held_out_split():
    with pytest.raises(ValueError, match="needs at least 10 rows to start from; there are 9"):
        MAFMixture(2, init="spectral", n_iter_no_change=1).fit(np.random.RandomState(0).rand(10, 2))
