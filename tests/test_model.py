import gc
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from nfmix import MAFMixture, load_dataset
from nfmix._tf import tf
from nfmix.presets import NFMIX_2D
from nfmix.reference import mixture_like
from nfmix.train import CompiledDensity, CompiledLoop


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


@pytest.fixture(scope="module")
def fitted(moons):
    X, _ = moons
    return MAFMixture(2, hidden_units=(8, 8), n_blocks=2, n_init=3, epochs=60, learning_rate=1e-2,
                      check_every=20, random_state=0).fit(X)


def test_density_integrates_to_one(fitted):
    grid_1d = np.linspace(-1.5, 2.5, 500)
    grid = np.stack(np.meshgrid(grid_1d, grid_1d), -1).reshape(-1, 2).astype(np.float32)
    cell = (grid_1d[1] - grid_1d[0]) ** 2
    assert np.exp(fitted.score_samples(grid)).sum() * cell == pytest.approx(1.0, abs=0.02)


def test_predict_is_the_argmax_of_predict_proba(fitted, moons):
    X, _ = moons
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(fitted.predict(X), proba.argmax(axis=1))
    assert fitted.weights_.sum() == pytest.approx(1.0)


def test_score_samples_matches_separate_tfp_flows(fitted, moons):
    X, _ = moons
    reference = mixture_like(fitted).log_prob(X[:200]).numpy()
    np.testing.assert_allclose(fitted.score_samples(X[:200]), reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_features", [3, 12])  # both ways of computing the first layer (see flows.SMALL_EVENT)
def test_score_samples_matches_separate_tfp_flows_in_more_dimensions(n_features):
    X = np.random.RandomState(0).normal(size=(300, n_features)).astype(np.float32)
    model = MAFMixture(3, hidden_units=(16,), n_blocks=2, n_init=2, epochs=20, learning_rate=1e-2, random_state=0).fit(X)
    reference = mixture_like(model).log_prob(X[:100]).numpy()
    np.testing.assert_allclose(model.score_samples(X[:100]), reference, rtol=1e-4, atol=1e-4)


def test_samples_come_from_the_model(fitted, moons):
    X, _ = moons
    points, components = fitted.sample(500, random_state=1)
    assert points.shape == (500, 2) and set(np.unique(components)) <= {0, 1}
    noise = np.random.RandomState(0).uniform(X.min(0), X.max(0), size=(500, 2)).astype(np.float32)
    assert fitted.score_samples(points).mean() > fitted.score_samples(noise).mean() + 0.5
    again, _ = fitted.sample(500, random_state=1)
    np.testing.assert_array_equal(points, again)


def test_save_and_load_round_trip(fitted, moons, tmp_path):
    X, _ = moons
    fitted.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.score_samples(X), fitted.score_samples(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.history_["loss"] == fitted.history_["loss"] and loaded.n_blocks == 2


def test_load_of_a_wrong_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        MAFMixture.load(tmp_path)


def test_same_random_state_same_model(moons):
    X, _ = moons
    settings = dict(epochs=40, check_every=20, n_init=2, learning_rate=1e-2)
    a = MAFMixture(2, random_state=5, **settings).fit(X)
    b = MAFMixture(2, random_state=5, **settings).fit(X)
    c = MAFMixture(2, random_state=6, **settings).fit(X)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.history_["loss"] == b.history_["loss"]
    assert not np.allclose(a.score_samples(X), c.score_samples(X))


def test_models_of_one_architecture_share_the_compiled_loop_not_the_weights(moons):
    X, _ = moons
    first = MAFMixture(2, hidden_units=(6,), epochs=30, random_state=0).fit(X)
    before = first.score_samples(X[:50])
    second = MAFMixture(2, hidden_units=(6,), epochs=30, random_state=1).fit(X)
    loops = [loop for key, loop in CompiledLoop._cache.items() if key[0][2] == (6,)]
    assert len(loops) == 1 and loops[0].mle.experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(first.score_samples(X[:50]), before)
    assert not np.allclose(second.score_samples(X[:50]), before)
    densities = [d for key, d in CompiledDensity._cache.items() if key[2] == (6,)]
    assert densities and all(d.function.experimental_get_tracing_count() <= 2 for d in densities)


def test_the_shared_compiled_functions_do_not_keep_a_fitted_model_alive(moons):
    X, _ = moons
    trained = []  # the restarts' parameters during training, then the kept restart's
    model = MAFMixture(2, hidden_units=(7,), n_init=2, epochs=20, check_every=10, random_state=0)
    model.fit(X, callback=lambda m, epoch: trained.append(weakref.ref(m._params)))
    model.predict(X)
    trained.append(weakref.ref(model._params))
    del model
    gc.collect()
    assert len(trained) == 3 and all(ref() is None for ref in trained)


def test_restarts_keep_the_best_likelihood(fitted, moons):
    X, _ = moons
    assert fitted.best_restart_ == int(np.argmin(fitted.restart_losses_))
    assert -fitted.score(X) == pytest.approx(fitted.restart_losses_.min(), rel=1e-4)
    assert np.asarray(fitted.history_["loss_per_restart"]).shape == (60, 3)


def test_moons_best_restart_reaches_ari_0_9(moons):
    X, y = moons
    model = MAFMixture(2, **{**NFMIX_2D, "random_state": 0}).fit(X)
    assert adjusted_rand_score(y, model.predict(X)) >= 0.9


@pytest.mark.parametrize("algorithm", ["em_soft", "em_hard"])
def test_em_variants_train(moons, algorithm):
    X, _ = moons
    model = MAFMixture(2, algorithm=algorithm, epochs=40, m_step_epochs=10, learning_rate=1e-2, random_state=0)
    model.fit(X)
    assert model.n_iter_ == 4 and np.isfinite(model.score(X))
    assert model.history_["loss"][-1] < model.history_["loss"][0]


def test_kmeans_init_puts_bases_on_centroids(moons):
    X, _ = moons
    model = MAFMixture(3, init="kmeans", epochs=1, random_state=0).fit(X)
    locs = model._params.loc.numpy()[0]
    assert locs.min() >= X.min() - 1e-6 and locs.max() <= X.max() + 1e-6
    assert len({tuple(np.round(l, 4)) for l in locs}) == 3


def test_a_nan_restart_is_restored_frozen_and_reported(moons):
    X, _ = moons

    def poison_restart_0(model, epoch):
        if epoch == 10:
            model._params.mades[0].kernels[0][0].assign(tf.fill(model._params.mades[0].kernels[0][0].shape, np.nan))

    model = MAFMixture(2, n_init=2, epochs=30, check_every=10, random_state=0)
    with pytest.warns(RuntimeWarning, match="restart 0"):
        model.fit(X, callback=poison_restart_0)
    assert model.history_["diverged"] == [{"epoch": 20, "restart": 0}]
    assert model.best_restart_ == 1 and np.isfinite(model.score_samples(X)).all()


def test_collapsed_components_are_reseeded_and_recorded(moons):
    X, _ = moons
    model = MAFMixture(2, min_weight=0.6, epochs=40, check_every=10, random_state=0).fit(X)
    events = model.history_["reseeds"]
    assert 1 <= len(events) <= 4 and {"epoch", "restart", "component"} <= set(events[0])
    assert np.isfinite(model.score_samples(X)).all()


def test_bic_and_aic(fitted, moons):
    X, _ = moons
    assert fitted.bic(X) > fitted.aic(X) and np.isfinite(fitted.bic(X))


def test_paper_preset_is_one_call():
    model = MAFMixture.paper(2)
    assert (model.hidden_units, model.activation, model.init, model.epochs, model.learning_rate) == \
        ((10,), "tanh", "random", 2000, 1e-3)
    assert MAFMixture.paper(10, images=True).hidden_units == (1024,)


@pytest.mark.parametrize("kwargs, data, message", [
    ({}, np.array([[0.0, np.nan]] * 5), "NaN or inf"),
    ({}, np.array([[0.0, np.inf]] * 5), "NaN or inf"),
    ({}, np.zeros(5), "2D array"),
    ({"n_components": 3}, np.zeros((2, 2)), "fewer than n_components"),
    ({"n_components": 0}, np.zeros((5, 2)), "n_components"),
    ({"algorithm": "vi"}, np.zeros((5, 2)), "algorithm"),
    ({"init": "pca"}, np.zeros((5, 2)), "init"),
    ({"epochs": 0}, np.zeros((5, 2)), "epochs"),
])
def test_bad_input_is_refused_clearly(kwargs, data, message):
    with pytest.raises(ValueError, match=message):
        MAFMixture(**{"n_components": 2, **kwargs}).fit(data)


def test_predict_before_fit_and_wrong_feature_count(fitted):
    with pytest.raises(ValueError, match="not fitted"):
        MAFMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not fitted"):
        MAFMixture(2).sample(5)
    with pytest.raises(ValueError, match="3 features, but the model was fitted on 2"):
        fitted.predict(np.zeros((4, 3)))


@pytest.mark.parametrize("legacy", ["0", "1"])
def test_works_whichever_keras_the_user_imported_first(legacy):
    script = (
        "import tensorflow as tf; tf.keras.layers.Dense(1)\n"
        "import numpy as np, nfmix\n"
        "from nfmix._tf import tfb\n"
        "X = np.random.RandomState(0).rand(50, 2).astype('float32')\n"
        "m = nfmix.MAFMixture(2, epochs=5, check_every=5, random_state=0).fit(X)\n"
        "net = tfb.AutoregressiveNetwork(params=2, hidden_units=[4]); net(tf.zeros([1, 2]))\n"
        "print('ok', np.isfinite(m.score(X)))\n"
    )
    env = {**os.environ, "TF_USE_LEGACY_KERAS": legacy}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok True" in result.stdout


def test_preset_settings_keep_seed_zero_and_skip_unset_overrides():
    from nfmix.presets import settings

    chosen = settings("nfmix", "2d", random_state=0, epochs=0, learning_rate=0.5, algorithm="")
    assert chosen["random_state"] == 0 and chosen["epochs"] == 2000 and chosen["learning_rate"] == 0.5
    assert chosen["algorithm"] == NFMIX_2D["algorithm"]
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        settings("fast", "2d")


def test_a_run_that_overrides_the_algorithm_is_named_as_its_own_set_up():
    from nfmix.presets import setup_name

    assert setup_name("nfmix", "images", "em_hard") == "nfmix+em_hard"
    assert setup_name("nfmix", "images", "") == setup_name("nfmix", "images", "mle") == "nfmix"
    assert setup_name("nfmix", "2d", "em_hard") == "nfmix"  # hard EM is the 2D preset's own algorithm
    assert setup_name("paper", "2d", "em_soft") == "paper+em_soft"
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        setup_name("fast", "images")
