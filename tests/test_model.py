import gc
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from nfmix import MAFMixture, load_dataset
from nfmix._tf import tf
from nfmix.inference import CompiledDensity
from nfmix.presets import NFMIX_2D
from nfmix.reference import mixture_like
from nfmix.train import CompiledLoop

# The flows' own mechanics: base="diag", so that no short fit is replaced by its Gaussian mixture (base="auto").
SMALL = dict(base="diag", hidden_units=(8,), n_init=2, epochs=40, check_every=20, learning_rate=1e-2, algorithm="mle")


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


@pytest.fixture(scope="module")
def fitted(moons):
    X, _ = moons
    return MAFMixture(
        2,
        base="diag",
        hidden_units=(8, 8),
        n_blocks=2,
        n_init=3,
        epochs=60,
        learning_rate=1e-2,
        algorithm="mle",
        check_every=20,
        random_state=0,
    ).fit(X)


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
    settings = dict(base="diag", hidden_units=(16,), n_blocks=2, n_init=2, epochs=20, algorithm="mle")
    model = MAFMixture(3, **settings, random_state=0).fit(X)
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


def test_save_and_load_round_trip_every_fitted_attribute_and_parameter_type(fitted, moons, tmp_path):
    X, _ = moons
    fitted.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.score_samples(X), fitted.score_samples(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.get_params() == fitted.get_params() and isinstance(loaded.hidden_units, tuple)
    for name in ("history_", "n_iter_", "converged_", "best_restart_", "lower_bound_", "n_features_in_"):
        assert getattr(loaded, name) == getattr(fitted, name), name
    for name in ("restart_losses_", "weights_", "labels_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(fitted, name))


def test_save_keeps_numpy_and_random_state_parameters(moons, tmp_path):
    X, _ = moons
    model = MAFMixture(
        2,
        random_state=np.int64(0),
        n_init=np.int64(1),
        learning_rate=np.float32(0.01),
        **{k: v for k, v in SMALL.items() if k not in ("n_init", "learning_rate")},
    ).fit(X)
    model.save(tmp_path / "a")
    assert MAFMixture.load(tmp_path / "a").get_params() == model.get_params()
    model.set_params(random_state=np.random.RandomState(3)).save(tmp_path / "b")
    restored = MAFMixture.load(tmp_path / "b").random_state
    assert restored.randint(1000) == np.random.RandomState(3).randint(1000)


def test_save_is_atomic_and_overwrites_only_a_saved_model(fitted, tmp_path, monkeypatch):
    fitted.save(tmp_path / "model")
    fitted.set_params(tol=0.5).save(tmp_path / "model")  # replacing an existing model
    assert MAFMixture.load(tmp_path / "model").tol == 0.5
    with pytest.raises(TypeError, match="cannot save parameter random_state"):
        fitted.set_params(random_state=object()).save(tmp_path / "broken")
    fitted.set_params(random_state=0, tol=None)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        fitted.save(tmp_path / "model")
    monkeypatch.undo()
    assert MAFMixture.load(tmp_path / "model").tol == 0.5  # the old model survived the failed save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing half-written left behind
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files"):
        fitted.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def _arrays_file(folder):
    """The arrays file that a saved model's config.json names (format 2)."""
    import json

    return folder / json.loads((folder / "config.json").read_text())["arrays"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "config.json").write_text('{"format": "nfmix.MAFM'), "not valid JSON"),
        (lambda folder: _arrays_file(folder).write_bytes(b"PK\x03\x04 truncated"), r"arrays-\w+\.npz cannot be read"),
        (lambda folder: _arrays_file(folder).unlink(), r"arrays-\w+\.npz not found"),
        (
            lambda folder: (folder / "config.json").write_text('{"format": "nfmix.MAFMixture", "format_version": 99}'),
            "format version 99",
        ),
    ],
)
def test_a_corrupt_saved_model_names_the_file_and_the_problem(fitted, tmp_path, damage, message):
    fitted.save(tmp_path / "model")
    damage(tmp_path / "model")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        MAFMixture.load(tmp_path / "model")


def test_load_of_a_wrong_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        MAFMixture.load(tmp_path)


def test_same_random_state_same_model(moons):
    X, _ = moons
    settings = dict(SMALL, epochs=40, check_every=20)
    a = MAFMixture(2, random_state=5, **settings).fit(X)
    b = MAFMixture(2, random_state=5, **settings).fit(X)
    c = MAFMixture(2, random_state=6, **settings).fit(X)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.history_["loss"] == b.history_["loss"]
    assert not np.allclose(a.score_samples(X), c.score_samples(X))


def test_models_of_one_architecture_share_the_compiled_loop_not_the_weights(moons):
    X, _ = moons
    first = MAFMixture(2, **{**SMALL, "hidden_units": (6,)}, random_state=0).fit(X)
    before = first.score_samples(X[:50])
    second = MAFMixture(2, **{**SMALL, "hidden_units": (6,)}, random_state=1).fit(X)
    loops = [loop for key, loop in CompiledLoop._cache.items() if key[0].hidden_units == (6,)]
    assert len(loops) == 1
    assert loops[0].tracing_counts() == {("checks", "mle", True, False): 1, ("epochs", False, True): 1}
    np.testing.assert_array_equal(first.score_samples(X[:50]), before)
    assert not np.allclose(second.score_samples(X[:50]), before)
    densities = [d for key, d in CompiledDensity._cache.items() if key[0].hidden_units == (6,)]
    assert len(densities) == 1 and densities[0].function.experimental_get_tracing_count() == 1


def test_a_configuration_fitted_again_after_many_others_compiles_nothing_new(moons):
    """TensorFlow never frees XLA code, so the compiled loops are never dropped: recompiling a dropped one mapped
    more memory each time, until a study of a few hundred fits crashed."""
    X, _ = moons

    def fit(width):
        MAFMixture(2, **{**SMALL, "hidden_units": (width,), "epochs": 2}, random_state=0).fit(X[:200])
        return next(loop for key, loop in CompiledLoop._cache.items() if key[0].hidden_units == (width,))

    first = fit(11)
    for width in range(12, 18):  # more configurations than the old cache of 4 kept
        fit(width)
    assert fit(11) is first and set(first.tracing_counts().values()) == {1}


@pytest.mark.slow
def test_one_trace_per_configuration_whatever_the_data_size_chunk_length_or_restarts(moons):
    """Data sizes, a short last chunk, EM and minibatches reuse a configuration's traces (no retracing)."""
    X, _ = moons
    settings = dict(SMALL, hidden_units=(5,), epochs=30, check_every=20)  # chunks of 20 and then 10 epochs
    for rows in (1000, 600, 333):
        MAFMixture(2, **settings, random_state=0).fit(X[:rows])
        MAFMixture(2, **{**settings, "algorithm": "em_hard", "m_step_epochs": 7}, random_state=0).fit(X[:rows])
        MAFMixture(2, **{**settings, "batch_size": 256, "epochs": 2}, random_state=0).fit(X[:rows])
    loops = {key[1]: loop for key, loop in CompiledLoop._cache.items() if key[0].hidden_units == (5,)}
    assert sorted(loops) == [256, 4000]  # the batch size is part of the configuration
    assert loops[4000].tracing_counts() == {
        ("checks", "mle", True, False): 1,
        ("checks", "em_hard", True, False): 1,
        ("epochs", False, True): 1,
        ("epochs", True, True): 1,
    }
    assert loops[256].tracing_counts() == {("checks", "mle", False, False): 1, ("epochs", False, False): 1}
    densities = [d for key, d in CompiledDensity._cache.items() if key[0].hidden_units == (5,)]
    assert len(densities) == 1 and densities[0].function.experimental_get_tracing_count() == 1  # n_init=2 and 1


def test_the_shared_compiled_functions_do_not_keep_a_fitted_model_alive(moons):
    X, _ = moons
    model = MAFMixture(2, **{**SMALL, "hidden_units": (7,)}, random_state=0)
    model.fit(X, callback=lambda m, epoch: m.predict(X[:10]))
    model.predict(X)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_restarts_keep_the_best_likelihood(fitted, moons):
    X, _ = moons
    assert fitted.best_restart_ == int(np.argmin(fitted.restart_losses_))
    assert -fitted.score(X) == pytest.approx(fitted.restart_losses_.min(), rel=1e-4)
    assert np.asarray(fitted.history_["loss_per_restart"]).shape == (60, 3)


@pytest.fixture(scope="module")
def defaults_fit(moons):
    """The defaults' full-length fit on the moons, seed 0 (about 30 s): the 2D preset's too, as they are one set-up."""
    return MAFMixture(2, random_state=0).fit(moons[0])


@pytest.mark.slow
def test_moons_best_restart_reaches_ari_0_9(moons, defaults_fit):
    X, y = moons
    preset = MAFMixture(2, **{**NFMIX_2D, "random_state": 0})
    assert preset.get_params() == defaults_fit.get_params(), "NFMIX_2D is no longer the defaults (README): fit it"
    assert adjusted_rand_score(y, defaults_fit.predict(X)) >= 0.9


@pytest.mark.slow
def test_the_defaults_cluster_moons(moons, defaults_fit):
    X, y = moons
    assert adjusted_rand_score(y, defaults_fit.labels_) >= 0.9  # what fit_predict returns


@pytest.mark.parametrize("algorithm", ["em_soft", "em_hard"])
def test_em_variants_train(moons, algorithm):
    X, _ = moons
    model = MAFMixture(2, n_init=1, algorithm=algorithm, epochs=40, m_step_epochs=10, random_state=0)
    model.fit(X)
    assert model.n_iter_ == 40 and model.history_["e_steps"] == 4 and np.isfinite(model.score(X))
    assert model.history_["loss"][-1] < model.history_["loss"][0]
    assert len(model.history_["em_objective"]) == 40


@pytest.mark.parametrize("algorithm", ["mle", "em_soft", "em_hard"])
def test_the_recorded_loss_is_the_mixture_negative_log_likelihood(moons, algorithm):
    X, _ = moons
    model = MAFMixture(2, base="diag", n_init=2, algorithm=algorithm, epochs=300, random_state=0).fit(X)
    assert model.history_["loss"][-1] == pytest.approx(-model.score(X), abs=0.01)
    assert model.lower_bound_ == pytest.approx(model.score(X), abs=1e-5)
    if algorithm != "mle":  # the M-step objective has no log pi_k, so it is a different number
        assert abs(model.history_["em_objective"][-1] - model.history_["loss"][-1]) > 0.05


def test_converged_only_when_tol_stopped_training(moons):
    X, _ = moons
    stopped = MAFMixture(2, **{**SMALL, "epochs": 400}, tol=10.0, random_state=0).fit(X)
    assert stopped.converged_ and stopped.n_iter_ == 40
    full = MAFMixture(2, **SMALL, random_state=0).fit(X)
    assert not full.converged_ and full.n_iter_ == 40
    with pytest.warns(ConvergenceWarning, match="did not reach tol"):
        MAFMixture(2, **SMALL, tol=1e-9, random_state=0).fit(X)


def test_kmeans_init_puts_bases_on_centroids(moons):
    X, _ = moons
    model = MAFMixture(3, init="kmeans", epochs=1, n_init=1, random_state=0).fit(X)
    locs = model.params_["loc"]
    assert locs.min() >= X.min() - 1e-6 and locs.max() <= X.max() + 1e-6
    assert len({tuple(np.round(loc, 4)) for loc in locs}) == 3


def _poison(restart, epoch_at):
    """A callback that sets one restart's first kernel to NaN at a given epoch, as a numerical blow-up would."""

    def callback(model, epoch):
        if epoch == epoch_at:
            trainer = model._live[0]
            values = trainer.values()
            values[3][restart] = np.nan
            trainer.set_values(values)

    return callback


def test_a_nan_restart_is_restored_frozen_and_reported(moons):
    X, _ = moons
    model = MAFMixture(2, **{**SMALL, "epochs": 30, "check_every": 10}, random_state=0)
    with pytest.warns(RuntimeWarning, match="restart 0"):
        model.fit(X, callback=_poison(0, 10))
    assert model.history_["diverged"] == [{"epoch": 20, "restart": 0}]
    assert model.best_restart_ == 1 and np.isfinite(model.score_samples(X)).all()
    per_restart = np.asarray(model.history_["loss_per_restart"])
    assert np.isnan(per_restart[10:, 0]).all() and np.isfinite(per_restart[:10, 0]).all()


def test_no_component_is_reseeded_into_the_kept_model(moons):
    X, _ = moons
    model = MAFMixture(2, min_weight=0.6, **{**SMALL, "n_init": 1}, random_state=0).fit(X)
    assert model.history_["reseeds"] and all(e["epoch"] < model.n_iter_ for e in model.history_["reseeds"])


def test_collapsed_components_are_reseeded_and_recorded(moons):
    X, _ = moons
    model = MAFMixture(2, min_weight=0.6, **{**SMALL, "n_init": 1}, random_state=0).fit(X)
    events = model.history_["reseeds"]
    assert 1 <= len(events) <= 4 and {"epoch", "restart", "component"} <= set(events[0])
    assert np.isfinite(model.score_samples(X)).all()


def test_a_reseeded_component_restarts_its_own_adam_step_count(moons):
    from nfmix.flows import MixtureSpec
    from nfmix.initialise import initial_values
    from nfmix.train import Trainer

    X, _ = moons
    spec = MixtureSpec(2, 2, 2, (4,))
    trainer = Trainer(spec, initial_values(spec, X, "kmeans", 0.1, np.random.RandomState(0)), 1e-2, 4000)
    trainer.run_epochs(tf.constant(X), 5, seed=0)
    trainer.reset_component(1, 0)
    np.testing.assert_array_equal(trainer.step.numpy(), [[5, 5], [0, 5]])
    assert not trainer.m.numpy()[1, 0].any() and trainer.m.numpy()[1, 1].any()
    trainer.run_epochs(tf.constant(X), 3, seed=1)
    np.testing.assert_array_equal(trainer.step.numpy(), [[8, 8], [3, 8]])


def test_bic_and_aic(fitted, moons):
    X, _ = moons
    assert fitted.bic(X) > fitted.aic(X) and np.isfinite(fitted.bic(X))


def test_paper_preset_is_one_call():
    model = MAFMixture.paper(2)
    assert (model.hidden_units, model.activation, model.init, model.epochs, model.learning_rate) == (
        (10,),
        "tanh",
        "random",
        2000,
        1e-3,
    )
    assert MAFMixture.paper(10, images=True).hidden_units == (1024,)


def test_the_density_preset_is_one_call_and_has_only_its_measured_kind():
    from nfmix import presets

    model = MAFMixture.density(3, epochs=50)
    assert (model.base, model.n_iter_no_change, model.validation_fraction, model.epochs) == ("gmm", 60, 0.3, 50)
    assert presets.settings("density", "2d")["base"] == "gmm"
    with pytest.raises(ValueError, match="preset 'density' has no 'images' set-up"):
        presets.settings("density", "images")


@pytest.mark.parametrize(
    "kwargs, data, message",
    [
        ({}, np.array([[0.0, np.nan]] * 5), "contains NaN"),
        ({}, np.array([[0.0, np.inf]] * 5), "contains infinity"),
        ({}, np.zeros(5), "2D array"),
        ({"n_components": 3}, np.random.rand(2, 2), "should be >= n_components=3"),
        ({"n_components": 0}, np.zeros((5, 2)), "n_components"),
        ({"algorithm": "vi"}, np.zeros((5, 2)), "algorithm"),
        ({"init": "pca"}, np.zeros((5, 2)), "init"),
        ({"epochs": 0}, np.zeros((5, 2)), "epochs"),
        ({"init": np.array([0, 1, 2, 0, 1])}, np.random.rand(5, 2), r"\[0, n_components=2\)"),
        ({"init": np.array([0.0, 1, 0, 1, 0])}, np.random.rand(5, 2), "integer array"),
        ({"init": np.array([0, 1, 0, 1])}, np.random.rand(5, 2), "init has 4 labels but X has 5 rows"),
        ({"init": "random", "init_epochs": 10}, np.random.rand(5, 2), "needs a starting partition"),
        ({"init_epochs": 3000}, np.random.rand(5, 2), "init_epochs"),
    ],
)
def test_bad_input_is_refused_clearly(kwargs, data, message):
    with pytest.raises(ValueError, match=message):
        MAFMixture(**{"n_components": 2, **kwargs}).fit(data)


def test_predict_before_fit_and_wrong_feature_count(fitted):
    with pytest.raises(ValueError, match="not fitted"):
        MAFMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not fitted"):
        MAFMixture(2).sample(5)
    with pytest.raises(ValueError, match="X has 3 features, but MAFMixture is expecting 2 features"):
        fitted.predict(np.zeros((4, 3)))


@pytest.mark.slow  # a fresh interpreter importing TensorFlow, each
@pytest.mark.parametrize("legacy", ["0", "1"])
def test_works_whichever_keras_the_user_imported_first(legacy):
    script = (
        "import tensorflow as tf; tf.keras.layers.Dense(1)\n"
        "import numpy as np, nfmix\n"
        "from nfmix._tf import tfb\n"
        "X = np.random.RandomState(0).rand(50, 2).astype('float32')\n"
        "m = nfmix.MAFMixture(2, n_init=1, epochs=5, random_state=0).fit(X)\n"
        "net = tfb.AutoregressiveNetwork(params=2, hidden_units=[4]); net(tf.zeros([1, 2]))\n"
        "print('ok', np.isfinite(m.score(X)))\n"
    )
    env = {**os.environ, "TF_USE_LEGACY_KERAS": legacy}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok True" in result.stdout


def test_a_presets_warm_up_keeps_its_share_of_overridden_epochs():
    from nfmix.presets import NFMIX_EMBEDDING, settings

    assert NFMIX_EMBEDDING["init_epochs"] * 4 == NFMIX_EMBEDDING["epochs"]  # a quarter of the epochs
    assert settings("nfmix", "embedding", epochs=20)["init_epochs"] == 5
    assert settings("nfmix", "embedding", epochs=20, init_epochs=0)["init_epochs"] == 0  # said outright, kept
    assert settings("nfmix", "embedding")["init_epochs"] == NFMIX_EMBEDDING["init_epochs"]


def test_preset_settings_skip_only_none():
    from nfmix.presets import settings

    chosen = settings("nfmix", "2d", random_state=0, epochs=None, learning_rate=0.5, algorithm=None)
    assert chosen["random_state"] == 0 and chosen["epochs"] == 2000 and chosen["learning_rate"] == 0.5
    assert chosen["algorithm"] == NFMIX_2D["algorithm"]
    falsy = settings("nfmix", "2d", reseed=False, trainable_base=False, jit_compile=False, tol=0)
    assert (falsy["reseed"], falsy["trainable_base"], falsy["jit_compile"], falsy["tol"]) == (False, False, False, 0)
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        settings("fast", "2d")


def test_reading_a_preset_loads_no_tensorflow():
    script = "import sys, nfmix.presets, nfmix.model; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_a_run_that_overrides_the_algorithm_is_named_as_its_own_set_up():
    from nfmix.presets import setup_name

    assert setup_name("nfmix", "images", "em_hard") == "nfmix+em_hard"
    assert setup_name("nfmix", "images", "") == setup_name("nfmix", "images", "mle") == "nfmix"
    assert setup_name("nfmix", "2d", "em_hard") == "nfmix"  # hard EM is the 2D preset's own algorithm
    assert setup_name("paper", "2d", "em_soft") == "paper+em_soft"
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        setup_name("fast", "images")


def test_the_estimator_accepts_exactly_the_activations_the_flows_know():
    from nfmix.flows import ACTIVATIONS
    from nfmix.model import ACTIVATION_NAMES  # kept apart so that nfmix.model imports no TensorFlow

    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS)


def test_a_label_start_holds_its_partition_for_init_epochs(moons):
    """While the flows learn the starting partition, no E-step moves the weights off its proportions."""
    X, y = moons
    start = (X[:, 0] > np.median(X[:, 0])).astype(np.int64)  # left / right, an uneven split of the classes
    start[:40] = 1
    settings = dict(base="diag", init=start, epochs=40, algorithm="em_hard", n_init=2, random_state=0)
    model = MAFMixture(2, init_epochs=40, **settings).fit(X)
    assert np.allclose(model.weights_, np.bincount(start) / len(start), atol=1e-6)
    assert model.history_["e_steps"] == 0
    moved = MAFMixture(2, init_epochs=0, **settings).fit(X)
    assert moved.history_["e_steps"] > 0 and not np.allclose(moved.weights_, model.weights_, atol=1e-3)


def test_gmm_init_starts_from_the_clusters_of_the_gaussian_mixture_a_user_would_fit():
    """init="gmm" is init=<the labels of GaussianMixture(k, n_init, random_state) on the user's X>, warm-up too."""
    from sklearn.datasets import make_blobs
    from sklearn.mixture import GaussianMixture

    X, _ = make_blobs(300, centers=3, cluster_std=[0.5, 1.0, 2.0], random_state=0)
    X = X * [1.0, 50.0]  # unlike feature scales: the mixture is fitted in the data's units, not the flows'
    labels = GaussianMixture(3, n_init=2, random_state=0).fit_predict(X)
    settings = dict(base="diag", epochs=40, n_init=2, random_state=0)
    by_name = MAFMixture(3, init="gmm", **settings).fit(X)
    by_labels = MAFMixture(3, init=labels, **settings).fit(X)
    for name, value in by_labels.params_.items():
        np.testing.assert_allclose(by_name.params_[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert by_name.history_["e_steps"] == by_labels.history_["e_steps"] == (40 - 40 // 4) // by_name.m_step_epochs
    with pytest.raises(ValueError, match="'gmm' or an array of labels"):
        MAFMixture(3, init="gaussian").fit(X)


def test_gmm_init_with_early_stopping_partitions_only_the_training_rows():
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(200, centers=2, random_state=1)
    model = MAFMixture(2, init="gmm", epochs=30, n_init=2, n_iter_no_change=3, validation_fraction=0.2, random_state=0)
    model.fit(X)  # the 160 training rows' labels start the flows; all 200 would not fit them
    assert np.isfinite(model.score(X)) and len(model.history_["validation_loss"]) > 0


def test_spectral_init_gives_every_restart_its_own_partition(moons):
    from nfmix.flows import MixtureSpec
    from nfmix.initialise import initial_state

    X, y = moons
    spec = MixtureSpec(3, 2, 2, (8,), 1, "tanh", False)
    values, partition = initial_state(spec, X, "spectral", 0.1, np.random.RandomState(0))
    assert partition.shape == (3, len(X)) and set(np.unique(partition)) == {0, 1}
    for r in range(3):  # the bases sit on each spectral cluster's mean, with its proportion
        for k in range(2):
            assert np.allclose(values[1][r, k], X[partition[r] == k].mean(axis=0), atol=1e-5)
        assert np.allclose(np.exp(values[0][r]), np.bincount(partition[r]) / len(X), atol=1e-6)
    model = MAFMixture(2, init="spectral", epochs=200, n_init=2, random_state=0).fit(X)  # a quarter warms up
    assert model.history_["e_steps"] == (200 - 50) // model.m_step_epochs and np.isfinite(model.score(X))
