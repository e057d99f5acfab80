"""The Python driver of a fit: compiled calls of checks (:mod:`nfmix.train`) for all restarts, and what needs
Python between them.

Inside a compiled call each check runs the E-step (for EM), its epochs, the divergence guard (rolling a diverged
restart back to its last weights whose loss was seen to be finite, and freezing it), early stopping on the
held-out likelihood and ``tol``. Between calls the driver re-seeds collapsed components, moves from the warm-up
to the chosen algorithm, draws the progress bar and calls the user's callback. Its settings come as one frozen
:class:`FitConfig`; what it saw is returned as a :class:`FitRecord`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings

import numpy as np
from scipy.special import logsumexp, softmax
from tqdm.auto import tqdm

from nfmix.flows import MixtureSpec
from nfmix.inference import CompiledDensity
from nfmix.initialise import network_values
from nfmix.train import ALL_STOPPED, COLLAPSED_AFTER, COLLAPSED_BEFORE, CONVERGED, SHRUNK, Trainer, data_tensor

# A GMM-nested fit keeps its flows' weights only where they beat its Gaussian mixture on the held-out rows by
# this many standard errors of the per-row gain: on a few held-out rows (iris: 11) a chance gain is no gain,
# and the mixture it grows from is the model to fall back on.
GMM_SIGNIFICANCE = 2.0


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """The settings of one fit's loop, every default resolved (by ``MAFMixture._fit_config``)."""

    algorithm: str  # "mle", "em_soft" or "em_hard"
    epochs: int
    check_every: int  # epochs per chunk: the E-step period for EM
    init_epochs: int  # warm-up epochs on the starting partition (0 without one)
    learning_rate: float
    reseed: bool
    min_weight: float
    tol: float | None  # training-loss rule; with early stopping, the held-out improvement that counts
    n_iter_no_change: int | None  # early stopping's patience, in checks; None: no early stopping
    verbose: int = 0
    callback_every: int | None = None  # epochs between a callback's calls; None: every check
    n_init_kept: int | None = None  # restarts that train past race_epochs; None: all of them
    race_epochs: int = 0  # the epoch after which only the n_init_kept best restarts train on


@dataclasses.dataclass
class FitRecord:
    """What one fit saw, per restart: losses by epoch, the M-step objective (EM), re-seeds, divergences, and the
    held-out losses of early stopping."""

    nll: list = dataclasses.field(default_factory=list)  # chunks of [n_epochs, R]
    objective: list = dataclasses.field(default_factory=list)
    reseeds: list = dataclasses.field(default_factory=list)
    diverged: list = dataclasses.field(default_factory=list)
    stopped: list = dataclasses.field(default_factory=list)  # early stopping, one dict per restart stopped
    pruned: list = dataclasses.field(default_factory=list)  # restarts that lost the race, one dict each
    validation_nll: list = dataclasses.field(default_factory=list)  # [R] per check, the first at the start
    validation_epochs: list = dataclasses.field(default_factory=list)
    best_validation_nll: np.ndarray | None = None  # [R]: each restart's best held-out NLL, where it is kept
    ranking: np.ndarray | None = None  # [R] under early stopping: what restarts are ranked by, lowest first
    start_nll: np.ndarray | None = None  # [R], at the starting weights: what "the loss rose" is measured from
    e_steps: int = 0
    epochs: int = 0
    compiled_calls: int = 0  # the fit's Python round trips into the compiled loop
    converged: bool = False
    seconds: float = 0.0


class FitLoop:
    """Trains every restart of one fit to the end of its budget, a stopping rule, or the last live restart.

    The checks (E-step, epochs, divergence guard, early stopping, ``tol``) run inside one compiled call
    (:meth:`nfmix.train.Trainer.run_checks`). The driver calls it again only to re-seed a collapsed component
    (which draws from the fit's NumPy generator), to move from the warm-up to the chosen algorithm, to show the
    progress bar, or for a ``callback``, which sees every check, or every ``callback_every`` epochs: a fit makes
    a few Python round trips, not one per E-step.
    """

    def __init__(
        self,
        config: FitConfig,
        trainer: Trainer,
        X: np.ndarray,
        rng: np.random.RandomState,
        partition: np.ndarray | None = None,
        validation: np.ndarray | None = None,
    ):
        self.config = config
        # The starting partition as hard responsibilities [n, R, K], learnt with the weights at its proportions.
        self.start = np.eye(trainer.spec.n_components, dtype=np.float32)[partition.T] if config.init_epochs else None
        self.trainer = trainer
        self.spec = trainer.spec  # of all n_init restarts; the trainer's shrinks as restarts stop (compaction)
        self.rows = np.arange(self.spec.n_restarts)  # the restart behind each of the trainer's rows
        self.removed = {}  # restart -> its final parameters, for restarts compacted out of the trainer
        self.raced = False  # whether the race of n_init_kept has ended
        self.X = X
        self.X_tensor = data_tensor(X)  # shares X's memory where it can
        self.validation = validation
        self.validation_tensor = data_tensor(validation) if validation is not None else None
        self.rng = rng
        self.record = FitRecord()

    def run(self, on_check=None) -> FitRecord:
        """``on_check(row, epoch)`` is called with the trainer's row of the restart that is currently best after
        each check, or with ``callback_every`` at the first check at or after each multiple of it."""
        config, record = self.config, self.record
        started = time.perf_counter()
        record.start_nll = self.final_losses()
        if self.validation is not None:
            self._start_validation()
        self.previous = np.full(self.spec.n_restarts, np.inf, np.float32)  # tol's: the last check's losses
        reseeded = False  # by an E-step's collapse, just before the next call
        next_callback = self._next_callback(0)
        with _progress_bar(config) as bar:
            while record.epochs < config.epochs:
                most = self._checks_to(next_callback) if on_check is not None else None
                outcome = self._run_checks(self.previous, reseeded, most)
                self.previous, reseeded = outcome["previous"], False
                bar.update(outcome["epochs"])
                if outcome["reason"] == ALL_STOPPED:
                    record.converged = bool(record.stopped)  # every restart stopped early (or diverged)
                    break
                if outcome["checks"]:
                    current = np.where(self.trainer.active.numpy() > 0, outcome["losses"][0, -1], np.inf)
                    best = int(np.argmin(current))
                    bar.set_postfix(loss=f"{current[best]:.4f}", refresh=False)  # drawn at the next update
                    due = record.epochs >= min(next_callback, config.epochs) or outcome["reason"] == CONVERGED
                    if on_check is not None and due:
                        on_check(best, record.epochs)
                        next_callback = self._next_callback(record.epochs)
                if outcome["reason"] == CONVERGED:
                    record.converged = True
                    break
                if outcome["reason"] in (COLLAPSED_BEFORE, COLLAPSED_AFTER):
                    self._reseed_collapsed()
                    reseeded = outcome["reason"] == COLLAPSED_BEFORE
                if self._racing() and record.epochs >= config.race_epochs:
                    self._prune()
                    self._compact()
                elif outcome["reason"] == SHRUNK:
                    self._compact()
        if self.validation is not None:
            self.trainer.restore_best(np.isfinite(record.best_validation_nll[self.rows]))
            record.ranking = self._ranking()
        record.seconds = time.perf_counter() - started
        return record

    def _ranking(self) -> np.ndarray:
        """What early stopping ranks restarts by: the best held-out NLL. A GMM start was fitted to the held-out
        rows as well, so for it that NLL is a tenth of its training likelihood; it is ranked instead by the
        Gaussian mixture's NLL on all rows less what its flows gained on the held-out ones (with no gain, the
        criterion of ``GaussianMixture(n_init=...)`` itself)."""
        record = self.record
        if self.spec.base != "gmm":
            return record.best_validation_nll
        start_held_out = record.validation_nll[0]
        n_train, n_held_out = len(self.X), len(self.validation)
        start_all = (n_train * record.start_nll + n_held_out * start_held_out) / (n_train + n_held_out)
        return start_all - (start_held_out - record.best_validation_nll)

    def _racing(self) -> bool:
        """Whether the race is still on: all restarts train until ``race_epochs``, then ``n_init_kept`` of them."""
        kept, config = self.config.n_init_kept, self.config
        return (
            kept is not None and kept < self.spec.n_restarts and config.race_epochs < config.epochs and not self.raced
        )

    def _prune(self) -> None:
        """The race ends: the ``n_init_kept`` live restarts with the lowest training NLL train on; the others stop
        here, and are not candidates for the fitted model (restarts that stopped earlier, by early stopping or
        divergence, still are)."""
        self.raced = True
        active = self.trainer.active.numpy()
        live = active > 0
        nll = self.final_losses()[self.rows]
        ranked = np.lexsort((nll, ~live))  # live rows first, by their NLL
        losers = ranked[self.config.n_init_kept :]
        losers = losers[live[losers]]
        for r in losers:
            self.record.pruned.append({"epoch": int(self.record.epochs), "restart": int(self.rows[r])})
        active[losers] = 0.0
        self.trainer.active.assign(active)

    def _compact(self) -> None:
        """Drop the restarts that no longer train (stopped early, diverged, or out of the race) from the trainer's
        restart axis, keeping their final parameters (the best held-out ones under early stopping) aside."""
        live = self.trainer.active.numpy() > 0
        if live.all() or not live.any():
            return
        best_nll = self.record.best_validation_nll
        for position in np.flatnonzero(~live):
            restart = int(self.rows[position])
            held_out_best = best_nll is not None and np.isfinite(best_nll[restart])
            self.removed[restart] = (
                self.trainer.best_values(position) if held_out_best else self.trainer.restart_values(position)
            )
        self.trainer = self.trainer.subset(np.flatnonzero(live))
        self.rows, self.previous = self.rows[live], self.previous[live]
        if self.start is not None:
            self.start = self.start[:, live]

    def values(self) -> list[np.ndarray]:
        """Every restart's parameters, in the trainer or compacted out of it, in ``spec.names()`` order."""
        values = []
        for slot, current in enumerate(self.trainer.values()):
            full = np.empty((self.spec.n_restarts, *current.shape[1:]), current.dtype)
            full[self.rows] = current
            for restart, kept in self.removed.items():
                full[restart] = kept[slot]
            values.append(full)
        return values

    def restart_values(self, restart: int) -> list[np.ndarray]:
        """One restart's parameters, as arrays in ``spec.names()`` order."""
        if restart in self.removed:
            return self.removed[restart]
        return self.trainer.restart_values(int(np.flatnonzero(self.rows == restart)[0]))

    def _next_callback(self, epoch: int) -> int:
        """The epoch after ``epoch`` at which the callback is due: the next check, or the next multiple of
        ``callback_every``."""
        every = self.config.callback_every or 1
        return (epoch // every + 1) * every

    def _checks_to(self, epoch: int) -> int:
        """Checks from the fit's current epoch to the first check at or after ``epoch``."""
        return max(1, -(-(epoch - self.record.epochs) // self.config.check_every))

    def _run_checks(self, previous, reseeded: bool, most: int | None) -> dict:
        """One compiled call of checks, of the warm-up or of the chosen algorithm, recorded in ``self.record``.

        After an E-step's re-seed (``reseeded``) the call's first check trains the new component before any
        component is tested for collapse again, and ``tol`` skips it: its loss is not comparable.
        """
        config, record, spec = self.config, self.record, self.spec
        warming_up = record.epochs < config.init_epochs
        every = config.check_every
        n_checks = self._checks_per_call() if most is None else min(most, self._checks_per_call())
        reseeds = np.bincount([e["restart"] for e in record.reseeds], minlength=spec.n_restarts)[self.rows]
        validated = self.validation is not None
        n_rows = len(self.rows)
        controls = dict(
            n_checks=np.int32(n_checks),
            epochs_per_check=np.int32(every),
            epoch0=np.int32(record.epochs),
            end_epoch=np.int32(config.init_epochs if warming_up else self._end_of_stage()),
            total_epochs=np.int32(config.epochs),
            reseed_from=np.int32(config.init_epochs),
            reseed=np.bool_(config.reseed and spec.n_components > 1),
            reseeds_left=reseeds < 2 * spec.n_components,
            min_weight=np.float32(config.min_weight),
            tol=np.float32(-1.0 if config.tol is None or validated else config.tol),
            validation_tol=np.float32(config.tol or 0.0),
            patience=np.int32(config.n_iter_no_change or 0),
            significance=np.float32(GMM_SIGNIFICANCE if spec.base == "gmm" else 0.0),
            counting=np.bool_(not warming_up),
            reseeded=np.bool_(reseeded),
            previous=np.asarray(previous, np.float32),
            # A call returns once half its restarts have stopped, so that the driver compacts them out.
            shrink_at=np.int32(n_rows // 2 if n_rows > 1 else 0),
        )
        # Seeds of the minibatch orders, one a check. The generator is then left as if only the checks that ran
        # had drawn theirs, one by one: a re-seed draws next from where it would have without the compiled loop.
        before = self.rng.get_state()
        seeds = self.rng.randint(2**31 - 1, size=n_checks)
        active_before = self.trainer.active.numpy() > 0
        outcome = self.trainer.run_checks(
            self.X_tensor,
            "fixed" if warming_up else config.algorithm,
            controls,
            seeds,
            given=self.start if warming_up else None,
            X_val=self.validation_tensor,
        )
        self.record.compiled_calls += 1
        self.rng.set_state(before)
        self.rng.randint(2**31 - 1, size=outcome["checks"])
        self._record(outcome, active_before, warming_up, int(controls["end_epoch"]))
        return outcome

    def _end_of_stage(self) -> int:
        """Where the current call must return at the latest: the end of the race, or of training."""
        if self._racing() and self.record.epochs < self.config.race_epochs:
            return self.config.race_epochs  # before the end: _racing() holds only then
        return self.config.epochs

    def _checks_per_call(self) -> int:
        """As many checks as the loss buffers hold; about 20 calls a fit when a progress bar is drawn."""
        from nfmix.train import CHECK_CAPACITY, EPOCH_CAPACITY

        most = max(1, min(CHECK_CAPACITY, EPOCH_CAPACITY // self.config.check_every))
        if self.config.verbose:
            return max(1, min(most, -(-self.config.epochs // (20 * self.config.check_every))))
        return most

    def _record(self, outcome: dict, active_before: np.ndarray, warming_up: bool, end_epoch: int) -> None:
        """The call's losses, events and held-out scores into the record; a restart's losses end where it
        stopped training (frozen before the call, diverged, or stopped early)."""
        record, epoch0, rows = self.record, self.record.epochs, self.rows
        losses = outcome["losses"]
        losses[:, :, ~active_before] = np.nan
        for r in np.flatnonzero(outcome["diverged_from"] >= 0):
            losses[:, outcome["diverged_from"][r] - epoch0 :, r] = np.nan
            epoch = int(outcome["diverged_at"][r])
            record.diverged.append({"epoch": epoch, "restart": int(rows[r])})
            warnings.warn(
                f"restart {rows[r]}: the loss or the weights became NaN/inf by epoch {epoch}; restored its last "
                f"weights with a finite loss and stopped it (lower learning_rate="
                f"{self.config.learning_rate})",
                RuntimeWarning,
                stacklevel=5,
            )
        stopped = outcome["stopped_at"]
        for r in sorted(np.flatnonzero(stopped >= 0), key=lambda r: (stopped[r], r)):
            losses[:, stopped[r] - epoch0 :, r] = np.nan
            record.stopped.append({"epoch": int(stopped[r]), "restart": int(rows[r])})
        record.nll.append(self._all_restarts(losses[0]))
        record.objective.append(self._all_restarts(losses[1]))
        record.epochs += int(outcome["epochs"])
        if self.config.algorithm != "mle" and not warming_up:
            record.e_steps += int(outcome["checks"])
        if "held_out" in outcome:
            every = self.config.check_every
            for i, nll in enumerate(outcome["held_out"]):
                record.validation_nll.append(self._all_restarts(nll))
                record.validation_epochs.append(min(epoch0 + (i + 1) * every, end_epoch))
            record.best_validation_nll[rows] = self.trainer.best_nll.numpy()

    def _all_restarts(self, per_row: np.ndarray) -> np.ndarray:
        """``[..., rows]`` of the trainer's restarts as ``[..., n_init]``, NaN for those compacted out."""
        full = np.full((*per_row.shape[:-1], self.spec.n_restarts), np.nan, per_row.dtype)
        full[..., self.rows] = per_row
        return full

    def _log_density(self, X: np.ndarray) -> np.ndarray:
        """Each restart's log-density of each row of ``X`` at its current weights, ``[n, R]``."""
        return logsumexp(CompiledDensity.evaluate(self.spec, self.values(), X), axis=-1)

    @staticmethod
    def _mean_nll(rows: np.ndarray) -> np.ndarray:
        """Each restart's mean NLL ``[R]`` from its row log-densities; inf where it is not finite."""
        nll = -rows.mean(axis=0)
        return np.where(np.isfinite(nll), nll, np.inf)  # nan_to_num would turn +inf into float32's max

    def final_losses(self) -> np.ndarray:
        """Each restart's mean NLL on the training rows at its current weights; inf where that is not finite."""
        return self._mean_nll(self._log_density(self.X))

    def _start_validation(self) -> None:
        """The starting weights are every restart's first best: a fit never ends worse on held-out data."""
        rows = self._log_density(self.validation)
        nll = self._mean_nll(rows)
        self.record.validation_nll.append(nll)
        self.record.validation_epochs.append(0)
        self.record.best_validation_nll = nll.copy()
        self.trainer.start_validation(rows, nll)

    # ------------------------------------------------------------------ re-seeding
    def _reseed_collapsed(self) -> bool:
        """Move each collapsed component (weight < min_weight) to the data point its restart explains worst."""
        K = self.spec.n_components
        weights = softmax(self.trainer.logits(), axis=-1)
        collapsed = np.argwhere((weights < self.config.min_weight) & (self.trainer.active.numpy()[:, None] > 0))
        budget = 2 * K  # per restart, so a hopeless restart cannot loop forever
        reseeds = self.record.reseeds
        # r is a row of the trainer; self.rows[r] the restart it holds
        collapsed = [(r, k) for r, k in collapsed if sum(e["restart"] == self.rows[r] for e in reseeds) < budget]
        if not collapsed or K == 1:
            return False
        values = self.trainer.values()
        probe = self.X[self.rng.choice(len(self.X), min(len(self.X), 2048), replace=False)]
        log_density = logsumexp(CompiledDensity.evaluate(self.trainer.spec, values, probe), axis=-1)  # [m, rows]
        fresh = network_values(self.spec, self.rng)  # drawn for every restart, compacted or not: the same draws
        loc, logits = self.spec.slot("loc"), MixtureSpec.LOGITS
        spread = self.spec.slot(self.spec.base_names[1])
        for r, k in collapsed:
            values[loc][r, k] = probe[np.argmin(log_density[:, r])]
            values[logits][r, k] = logsumexp(np.delete(values[logits][r], k)) - np.log(K - 1)
            if self.spec.base == "gmm":  # a collapsed covariance is no start: the data's whole spread is
                values[spread][r, k] = _whitening_of_all(self.X)
            for i, value in enumerate(fresh, start=MixtureSpec.NETWORKS):
                values[i][r, k] = value[self.rows[r], k]
            self.trainer.reset_component(r, k)
            reseeds.append({"epoch": int(self.record.epochs), "restart": int(self.rows[r]), "component": int(k)})
        self.trainer.set_values(values)
        return True


def _progress_bar(config: FitConfig):
    """tqdm over the epochs: redrawn in place in a terminal or notebook; into a file, a line every 15 s at most."""
    drawn_in_place = sys.stderr.isatty() or any("notebook" in cls.__module__ for cls in tqdm.__mro__)
    return tqdm(
        total=config.epochs,
        disable=not config.verbose,
        desc="epochs",
        unit="ep",
        mininterval=0.1 if drawn_in_place else 15.0,
    )


def _whitening_of_all(X: np.ndarray) -> np.ndarray:
    """The lower-triangular ``W`` that whitens the whole data set (``W^T W`` its precision)."""
    covariance = np.atleast_2d(np.cov(np.asarray(X, np.float64), rowvar=False)) + 1e-6 * np.eye(X.shape[1])
    return np.linalg.inv(np.linalg.cholesky(covariance))
