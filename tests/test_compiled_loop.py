"""The whole fit runs inside the compiled loop: a fit is a few compiled calls, and the E-step, the divergence
rollback, re-seeding and both stopping rules work there."""

import numpy as np
import pytest
from sklearn.datasets import load_iris

from nfmix import MAFMixture, load_dataset
from nfmix.flows import MixtureSpec
from nfmix.initialise import initial_state
from nfmix.scaling import FeatureScaling
from nfmix.train import Trainer, data_tensor


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")[0]


def test_a_default_fit_makes_one_compiled_call_and_one_more_per_reseed(moons):
    model = MAFMixture(2, epochs=1000, random_state=0).fit(moons)
    history = model.history_
    assert history["e_steps"] == 200  # hard EM: an E-step every 5 epochs, each inside the loop
    # 1000 epochs fit one call's buffers; each re-seed (drawn by NumPy) adds a call.
    assert history["compiled_calls"] == 1 + len({e["epoch"] for e in history["reseeds"]})


def test_a_callback_sees_every_check(moons):
    seen = []
    model = MAFMixture(2, n_init=2, epochs=60, random_state=0).fit(moons, callback=lambda m, epoch: seen.append(epoch))
    assert seen == list(range(5, 65, 5)) and model.history_["compiled_calls"] >= len(seen)


def test_a_callback_every_100_epochs_costs_a_round_trip_per_100_epochs_and_changes_no_bit():
    X, _ = load_dataset("smile")  # a set whose components collapse: re-seeds end calls early as well
    settings = dict(n_init=3, epochs=300, random_state=0)
    plain = MAFMixture(4, **settings).fit(X)
    seen = []
    model = MAFMixture(4, **settings).fit(X, callback=lambda m, epoch: seen.append(epoch), callback_every=100)
    assert seen == [100, 200, 300]
    reseed_calls = len({e["epoch"] for e in model.history_["reseeds"]})
    assert model.history_["compiled_calls"] <= 3 + reseed_calls < 300 // 5  # not one a check
    np.testing.assert_array_equal(model.history_["loss_per_restart"], plain.history_["loss_per_restart"])
    assert model.history_["reseeds"] == plain.history_["reseeds"]


def test_a_race_keeps_the_best_restarts_and_compacts_the_others_out_of_the_restart_axis(moons):
    from nfmix.train import CompiledLoop

    settings = dict(base="diag", n_init=4, epochs=123, reseed=False, random_state=0)
    everyone = MAFMixture(2, **settings).fit(moons)
    raced = MAFMixture(2, n_init_kept=2, **settings).fit(moons)
    pruned = raced.history_["pruned"]
    assert [event["epoch"] for event in pruned] == [15, 15]  # a tenth of the epochs, up to the next E-step
    assert raced.history_["e_steps"] == everyone.history_["e_steps"]  # the race moved no E-step
    losers = [event["restart"] for event in pruned]
    race = np.array(everyone.history_["loss_per_restart"])
    kept = [r for r in range(4) if r not in losers]
    assert set(np.argsort(race[14])[:2]) == set(kept)  # the two lowest losses at the end of the race go on
    curves = np.array(raced.history_["loss_per_restart"])
    np.testing.assert_array_equal(curves[:15], race[:15])
    assert np.isnan(curves[15:, losers]).all() and np.isfinite(curves[15:, kept]).all()
    # The finalists train as they would have beside the others, now as a 2-restart computation.
    np.testing.assert_allclose(curves[:, kept], race[:, kept], rtol=1e-5, atol=1e-5)
    assert raced.best_restart_ in kept and np.isfinite(raced.restart_losses_).all()
    spec = raced._fitted_spec.with_restarts(2)
    assert any(key[0] == spec for key in CompiledLoop._cache)  # the compiled loop of two restarts ran


def test_a_race_ends_after_the_warm_up_whatever_the_callback(moons):
    X, y = moons[:300], (moons[:300, 0] > np.median(moons[:300, 0])).astype(np.int64)
    settings = dict(base="diag", init=y, n_init=3, n_init_kept=1, epochs=40, random_state=0)  # warm-up: 10 epochs
    plain = MAFMixture(2, **settings).fit(X)
    watched = MAFMixture(2, **settings).fit(X, callback=lambda model, epoch: None)
    assert {event["epoch"] for event in plain.history_["pruned"]} == {15}  # one E-step check after the warm-up
    assert watched.history_["pruned"] == plain.history_["pruned"] and watched.best_restart_ == plain.best_restart_
    np.testing.assert_array_equal(watched.history_["loss_per_restart"], plain.history_["loss_per_restart"])


@pytest.mark.parametrize("kept, error", [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_a_bad_number_of_kept_restarts_is_refused_before_any_work(moons, kept, error):
    with pytest.raises(error, match="n_init_kept"):
        MAFMixture(2, n_init_kept=kept).fit(moons)


def test_gradient_ml_inside_the_loop_is_the_plain_chunked_training_bit_for_bit(moons):
    """With no re-seed and no stopping rule, only the loop's place changed: the same epochs, the same bits."""
    settings = dict(base="diag", n_init=3, algorithm="mle", epochs=60, check_every=20, reseed=False, random_state=0)
    model = MAFMixture(2, **settings).fit(moons)
    X = FeatureScaling.fit(moons).transform(moons).astype(np.float32)
    spec = MixtureSpec(3, 2, 2, (10,))
    values, _ = initial_state(spec, X, "kmeans", 0.1, np.random.RandomState(0))
    trainer = Trainer(spec, values, 1e-2, 4000)
    losses = np.concatenate([trainer.run_epochs(data_tensor(X), 20, seed=0)[0] for _ in range(3)])
    to_data_units = -FeatureScaling.fit(moons).log_det
    np.testing.assert_array_equal(np.array(model.history_["loss_per_restart"]), losses + to_data_units)
    for name, value in zip(spec.names(), trainer.restart_values(model.best_restart_)):
        np.testing.assert_array_equal(model.params_[name], value)


def test_a_diverged_restart_is_rolled_back_and_stopped_inside_the_call(moons):
    with pytest.warns(RuntimeWarning, match="became NaN/inf"):
        model = MAFMixture(
            2, n_init=3, algorithm="mle", epochs=200, learning_rate=3.0, check_every=20, reseed=False, random_state=0
        ).fit(moons)
    history = model.history_
    assert history["diverged"] and history["compiled_calls"] == 1  # no round trip for a rollback
    curves = np.array(history["loss_per_restart"])
    for event in history["diverged"]:
        r, epoch = event["restart"], event["epoch"]
        assert np.isnan(curves[epoch - 20 :, r]).all()  # its record ends with the check it failed in
    assert all(np.isfinite(value).all() for value in model.params_.values())


def test_early_stopping_stops_each_restart_inside_one_call():
    X, _ = load_iris(return_X_y=True)
    model = MAFMixture(
        3,
        base="gmm",
        hidden_units=(32, 32),
        n_init=2,
        algorithm="mle",
        epochs=3000,
        check_every=10,
        n_iter_no_change=3,
        random_state=0,
    ).fit(X)
    assert model.converged_ and model.n_iter_ < 3000
    # One call, returning early only to compact a stopped restart out while the other trains on.
    stopped = model.history_["stopped"]
    assert len(stopped) == 2 and model.history_["compiled_calls"] == len({event["epoch"] for event in stopped})


def test_tol_stops_inside_the_loop(moons):
    model = MAFMixture(2, n_init=2, epochs=2000, tol=1e-3, reseed=False, random_state=0).fit(moons)
    assert model.converged_ and model.n_iter_ < 2000 and model.history_["compiled_calls"] == 1
    loss = np.array(model.history_["loss"])
    assert loss[-6] - loss[-1] < 1e-3  # the last check improved by less than tol


def test_an_em_reseed_trains_the_new_component_before_judging_it_again():
    X, _ = load_dataset("smile")
    model = MAFMixture(2, n_init=3, epochs=300, init="random", min_weight=0.3, random_state=0).fit(X)
    epochs = [(e["restart"], e["epoch"]) for e in model.history_["reseeds"]]
    assert epochs, "the set-up is meant to collapse components"
    for restart in {r for r, _ in epochs}:
        mine = sorted(epoch for r, epoch in epochs if r == restart)
        assert all(b - a >= 5 for a, b in zip(mine, mine[1:]))  # a check of M-step epochs between two re-seeds
