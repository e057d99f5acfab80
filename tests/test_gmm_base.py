"""``base="gmm"``: components that start as a fitted Gaussian mixture's, and early stopping on held-out likelihood."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split

from nfmix import MAFMixture, load_dataset
from nfmix._tf import tf
from nfmix.flows import FlowMixture, MixtureSpec
from nfmix.initialise import initial_state
from nfmix.scaling import FeatureScaling

QUICK = dict(hidden_units=(8,), n_init=2, epochs=40, algorithm="mle", check_every=10)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


def _rescaled(X):
    return FeatureScaling.fit(X).transform(X)  # as fit rescales its data


def test_the_start_is_a_mixture_of_full_covariance_gaussians_and_its_labels(iris):
    X = _rescaled(iris[0])
    spec = MixtureSpec(2, 3, 4, (16, 16), n_blocks=2, base="gmm")
    values, labels = initial_state(spec, X, "kmeans", 0.1, np.random.RandomState(0))
    flows = FlowMixture(spec, [tf.constant(v) for v in values])
    weighted = flows.weighted_log_prob(tf.constant(X)).numpy()  # [n, R, K]
    for r in range(2):  # the same mixture computed from its means, covariances and weights alone
        whitening = values[spec.slot("whitening")][r].astype(np.float64)
        covariances = np.linalg.inv(np.swapaxes(whitening, -1, -2) @ whitening)
        expected = np.stack(
            [
                np.log(np.exp(values[0][r]) / np.exp(values[0][r]).sum())[k]
                + multivariate_normal(values[1][r, k], covariances[k]).logpdf(X)
                for k in range(3)
            ],
            -1,
        )
        np.testing.assert_allclose(weighted[:, r], expected, atol=1e-4)
        top_two = np.sort(weighted[:, r], axis=-1)[:, -2:]
        clear = top_two[:, 1] - top_two[:, 0] > 1e-3  # a near-tie may go either way in float32
        np.testing.assert_array_equal(weighted[clear, r].argmax(-1), labels[r][clear])


@pytest.mark.parametrize("init", ["kmeans", "gmm"])  # init="gmm" starts from that mixture and its clusters
def test_the_fit_starts_as_the_users_own_gaussian_mixture(iris, init):
    X, _ = iris
    model = MAFMixture(3, base="gmm", init=init, epochs=1, random_state=0).fit(X)
    gmm = GaussianMixture(3, n_init=10, random_state=0).fit(X)  # the GMM a user compares with, in X's units
    for r in range(10):  # every restart starts there; they differ in their networks
        assert model.history_["start_loss_per_restart"][r] == pytest.approx(-gmm.score(X), abs=1e-4)


@pytest.mark.parametrize("algorithm", ["mle", "em_soft", "em_hard"])
def test_every_algorithm_trains_a_gmm_base_beyond_its_start(iris, algorithm):
    X, _ = iris
    model = MAFMixture(3, base="gmm", **{**QUICK, "algorithm": algorithm}, random_state=0).fit(X)
    assert np.isfinite(model.restart_losses_).all() and model.restart_losses_.shape == (2,)
    assert model.lower_bound_ > -model.history_["start_loss"]  # training raised the likelihood


def test_a_trainable_gmm_base_and_a_reseed_stay_finite(iris):
    X, _ = iris
    model = MAFMixture(3, base="gmm", trainable_base=True, min_weight=0.4, **QUICK, random_state=0).fit(X)
    assert model.history_["reseeds"] and np.isfinite(model.score(X))


def _held_out(X, seed, fraction=0.1):
    rows = np.arange(len(X))
    train, held_out = train_test_split(
        rows, test_size=int(np.ceil(fraction * len(X))), random_state=np.random.RandomState(seed)
    )
    return np.sort(train), np.sort(held_out)


def test_early_stopping_keeps_the_best_held_out_weights_and_honours_its_patience(iris):
    X, _ = iris
    patience, every = 3, 10
    model = MAFMixture(
        3,
        base="gmm",
        hidden_units=(32, 32),
        n_init=2,
        algorithm="mle",
        epochs=3000,
        check_every=every,
        n_iter_no_change=patience,
        random_state=0,
    ).fit(X)
    assert model.n_iter_ < 3000 and model.converged_  # iris is small: the flows overfit, and both restarts stop
    _, held_out = _held_out(X, 0)
    # The kept weights are among those seen on the held-out rows, never below the start, and scored so.
    assert model.best_validation_score_ >= model.validation_scores_[0]
    assert np.isclose(model.validation_scores_, model.best_validation_score_).any()
    assert model.score(X[held_out]) == pytest.approx(model.best_validation_score_, abs=1e-4)
    curves = np.array(model.history_["validation_loss_per_restart"])
    for stop in model.history_["stopped"]:
        r = stop["restart"]
        best = int(np.nanargmin(curves[:, r]))
        assert model.history_["validation_epochs"][best] + patience * every == stop["epoch"]
    # A GMM start was fitted to the held-out rows too: restarts are ranked by its NLL on all rows, less what
    # the flows gained on the held-out rows.
    train, held_out = _held_out(X, 0)
    start = np.array(model.history_["start_loss_per_restart"])
    start_all = (len(train) * start + len(held_out) * curves[0]) / len(X)
    assert model.best_restart_ == int(np.argmin(start_all - (curves[0] - np.nanmin(curves, axis=0))))


def test_early_stopping_ranks_other_bases_by_held_out_likelihood(iris):
    X, _ = iris
    model = MAFMixture(
        3, hidden_units=(16,), n_init=3, algorithm="mle", epochs=400, check_every=10, n_iter_no_change=3, random_state=0
    ).fit(X)
    curves = np.array(model.history_["validation_loss_per_restart"])
    assert model.best_restart_ == int(np.nanargmin(np.nanmin(curves, axis=0)))


def test_early_stopping_never_ends_below_the_start_on_held_out_rows(iris):
    X, _ = iris
    model = MAFMixture(
        3,
        base="gmm",
        n_init=1,
        algorithm="mle",
        epochs=200,
        learning_rate=0.5,
        check_every=10,
        n_iter_no_change=2,
        random_state=0,
    )
    model.fit(X)  # a step far too large: the held-out likelihood falls
    assert min(model.validation_scores_) < model.validation_scores_[0] <= model.best_validation_score_
    train, _ = _held_out(X, 0)
    assert model.score(X[train]) == pytest.approx(model.lower_bound_, abs=1e-4)  # scored on the rows it trained on


def test_with_early_stopping_the_start_is_the_gaussian_mixture_of_every_row(iris):
    X, _ = iris
    model = MAFMixture(
        3,
        base="gmm",
        n_init=1,
        algorithm="mle",
        epochs=200,
        learning_rate=0.5,
        check_every=10,
        n_iter_no_change=2,
        random_state=0,
    ).fit(X)
    assert model.best_validation_score_ == model.validation_scores_[0]  # the flows only lost: the start is kept
    gmm = GaussianMixture(3, n_init=1, random_state=0).fit(X)  # on all 150 rows: the held-out ones only judge
    np.testing.assert_allclose(model.score_samples(X), gmm.score_samples(X), atol=1e-4)
    np.testing.assert_array_equal(model.predict(X), gmm.predict(X))


@pytest.mark.parametrize("name", ["iris", "moons"])
def test_flows_are_kept_only_where_they_clearly_beat_the_gaussian_mixture_on_held_out_rows(iris, name):
    X = iris[0] if name == "iris" else load_dataset("moons")[0]
    k = 3 if name == "iris" else 2
    model = MAFMixture(
        k,
        base="gmm",
        n_init=2,
        hidden_units=(32, 32),
        algorithm="mle",
        epochs=1500,
        check_every=10,
        n_iter_no_change=5,
        random_state=0,
    ).fit(X)
    _, held_out = _held_out(X, 0)
    gain = model.score_samples(X[held_out]) - GaussianMixture(k, n_init=2, random_state=0).fit(X).score_samples(
        X[held_out]
    )
    kept_flows = np.abs(gain).max() > 1e-4
    if kept_flows:  # by two standard errors of the per-row gain
        assert gain.mean() > 2 * gain.std() / np.sqrt(len(gain))
    assert kept_flows == (name == "moons")  # 1000 curved points: the flows win; 15 iris rows: no clear gain


def test_a_gmm_base_with_early_stopping_saves_and_loads(iris, tmp_path):
    X, _ = iris
    model = MAFMixture(3, base="gmm", n_iter_no_change=2, **QUICK, random_state=0).fit(X)
    model.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    assert loaded.base == "gmm" and loaded._fitted_spec == model._fitted_spec
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), rtol=1e-6)
    assert loaded.validation_scores_ == model.validation_scores_


def test_a_saved_base_that_was_changed_after_fit_is_refused(iris, tmp_path):
    X, _ = iris
    model = MAFMixture(3, base="gmm", **QUICK, random_state=0).fit(X)
    with pytest.raises(ValueError, match="base='diag' \\(fitted with 'gmm'\\)"):
        model.set_params(base="diag").save(tmp_path / "model")


def test_a_gmm_base_counts_its_means_and_covariances_in_the_bic(iris):
    X, _ = iris
    diag = MAFMixture(3, base="diag", **QUICK, random_state=0).fit(X)
    gmm = MAFMixture(3, base="gmm", **QUICK, random_state=0).fit(X)
    assert gmm._n_parameters() - diag._n_parameters() == 3 * (4 + 10)
    assert np.log(len(X)) * gmm._n_parameters() == pytest.approx(gmm.bic(X) + 2 * gmm.score(X) * len(X))


@pytest.mark.parametrize(
    "settings, error, message",
    [
        ({"base": "full"}, ValueError, "base must be one of 'auto', 'diag', 'gmm'"),
        ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change == 0, must be >= 1"),
        ({"n_iter_no_change": True}, TypeError, "n_iter_no_change must be a number, not a boolean"),
        ({"validation_fraction": 1.0, "n_iter_no_change": 3}, ValueError, "validation_fraction == 1.0"),
        ({"validation_fraction": 0.95, "n_iter_no_change": 3}, ValueError, "early stopping needs more rows"),
    ],
)
def test_bad_base_or_early_stopping_settings_are_named(iris, settings, error, message):
    with pytest.raises(error, match=message):
        MAFMixture(3, **settings).fit(iris[0][:30])


def test_the_mixture_density_is_the_sum_of_its_weighted_components(iris):
    X, _ = iris
    model = MAFMixture(3, base="gmm", **QUICK, random_state=0).fit(X)
    np.testing.assert_allclose(model.score_samples(X), logsumexp(model.weighted_log_prob(X), axis=1))
    points, _ = model.sample(200, random_state=0)
    assert np.isfinite(model.score_samples(points)).all()


@pytest.mark.parametrize("base, algorithm", [("diag", "mle"), ("gmm", "mle"), ("gmm", "em_hard")])
def test_the_best_held_out_weights_are_kept_whole_through_a_reseed(base, algorithm):
    # A re-seed moves a component's untrained base; the weights put back must include the base of their moment.
    rng = np.random.RandomState(1)
    X = np.vstack([rng.normal([0, 0], 0.3, (270, 2)), rng.normal([3, 3], 0.3, (30, 2))])
    model = MAFMixture(
        2,
        base=base,
        hidden_units=(8,),
        n_init=1,
        algorithm=algorithm,
        epochs=60,
        check_every=5,
        n_iter_no_change=2,
        min_weight=0.3,
        jit_compile=False,
        random_state=0,
    )
    model.fit(X)
    assert model.history_["reseeds"]
    train, held_out = _held_out(X, 0)
    assert model.score(X[held_out]) == pytest.approx(model.best_validation_score_, abs=1e-4)
    assert model.score(X[train]) == pytest.approx(model.lower_bound_, abs=1e-4)
