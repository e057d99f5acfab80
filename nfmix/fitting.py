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
from nfmix.train import ALL_STOPPED, COLLAPSED_AFTER, COLLAPSED_BEFORE, CONVERGED, Trainer, data_tensor

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


@dataclasses.dataclass
class FitRecord:
    """What one fit saw, per restart: losses by epoch, the M-step objective (EM), re-seeds, divergences, and the
    held-out losses of early stopping."""

    nll: list = dataclasses.field(default_factory=list)  # chunks of [n_epochs, R]
    objective: list = dataclasses.field(default_factory=list)
    reseeds: list = dataclasses.field(default_factory=list)
    diverged: list = dataclasses.field(default_factory=list)
    stopped: list = dataclasses.field(default_factory=list)  # early stopping, one dict per restart stopped
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
    progress bar, or for a ``callback``, which sees every check: a fit makes a few Python round trips, not one
    per E-step.
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
        self.spec = trainer.spec
        self.X = X
        self.X_tensor = data_tensor(X)  # shares X's memory where it can
        self.validation = validation
        self.validation_tensor = data_tensor(validation) if validation is not None else None
        self.rng = rng
        self.record = FitRecord()

    def run(self, on_check=None) -> FitRecord:
        """``on_check(restart, epoch)`` is called after each check with the restart that is currently best."""
        config, record = self.config, self.record
        started = time.perf_counter()
        record.start_nll = self.final_losses()
        if self.validation is not None:
            self._start_validation()
        previous = np.full(self.spec.n_restarts, np.inf, np.float32)  # tol's comparison: the last check's losses
        reseeded = False  # by an E-step's collapse, just before the next call
        with _progress_bar(config) as bar:
            while record.epochs < config.epochs:
                outcome = self._run_checks(previous, reseeded, one_check=on_check is not None)
                previous, reseeded = outcome["previous"], False
                bar.update(outcome["epochs"])
                if outcome["reason"] == ALL_STOPPED:
                    record.converged = bool(record.stopped)  # every restart stopped early (or diverged)
                    break
                if outcome["checks"]:
                    current = np.where(self.trainer.active.numpy() > 0, outcome["losses"][0, -1], np.inf)
                    best = int(np.argmin(current))
                    bar.set_postfix(loss=f"{current[best]:.4f}", refresh=False)  # drawn at the next update
                    if on_check is not None:
                        on_check(best, record.epochs)
                if outcome["reason"] == CONVERGED:
                    record.converged = True
                    break
                if outcome["reason"] in (COLLAPSED_BEFORE, COLLAPSED_AFTER):
                    self._reseed_collapsed()
                    reseeded = outcome["reason"] == COLLAPSED_BEFORE
        if self.validation is not None:
            self.trainer.restore_best(np.isfinite(record.best_validation_nll))
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

    def _run_checks(self, previous, reseeded: bool, one_check: bool) -> dict:
        """One compiled call of checks, of the warm-up or of the chosen algorithm, recorded in ``self.record``.

        After an E-step's re-seed (``reseeded``) the call's first check trains the new component before any
        component is tested for collapse again, and ``tol`` skips it: its loss is not comparable.
        """
        config, record, spec = self.config, self.record, self.spec
        warming_up = record.epochs < config.init_epochs
        every = config.check_every
        n_checks = 1 if one_check else self._checks_per_call()
        reseeds = np.bincount([e["restart"] for e in record.reseeds], minlength=spec.n_restarts)
        validated = self.validation is not None
        controls = dict(
            n_checks=np.int32(n_checks),
            epochs_per_check=np.int32(every),
            epoch0=np.int32(record.epochs),
            end_epoch=np.int32(config.init_epochs if warming_up else config.epochs),
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
        record, epoch0 = self.record, self.record.epochs
        losses = outcome["losses"]
        losses[:, :, ~active_before] = np.nan
        for r in np.flatnonzero(outcome["diverged_from"] >= 0):
            losses[:, outcome["diverged_from"][r] - epoch0 :, r] = np.nan
            epoch = int(outcome["diverged_at"][r])
            record.diverged.append({"epoch": epoch, "restart": int(r)})
            warnings.warn(
                f"restart {r}: the loss or the weights became NaN/inf by epoch {epoch}; restored its last "
                f"weights with a finite loss and stopped it (lower learning_rate="
                f"{self.config.learning_rate})",
                RuntimeWarning,
                stacklevel=5,
            )
        stopped = outcome["stopped_at"]
        for r in sorted(np.flatnonzero(stopped >= 0), key=lambda r: (stopped[r], r)):
            losses[:, stopped[r] - epoch0 :, r] = np.nan
            record.stopped.append({"epoch": int(stopped[r]), "restart": int(r)})
        record.nll.append(losses[0])
        record.objective.append(losses[1])
        record.epochs += int(outcome["epochs"])
        if self.config.algorithm != "mle" and not warming_up:
            record.e_steps += int(outcome["checks"])
        if "held_out" in outcome:
            every = self.config.check_every
            for i, nll in enumerate(outcome["held_out"]):
                record.validation_nll.append(nll)
                record.validation_epochs.append(min(epoch0 + (i + 1) * every, end_epoch))
            record.best_validation_nll = self.trainer.best_nll.numpy()

    def _log_density(self, X: np.ndarray) -> np.ndarray:
        """Each restart's log-density of each row of ``X`` at its current weights, ``[n, R]``."""
        return logsumexp(CompiledDensity.evaluate(self.spec, self.trainer.tensors(), X), axis=-1)

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
        collapsed = [(r, k) for r, k in collapsed if sum(e["restart"] == r for e in reseeds) < budget]
        if not collapsed or K == 1:
            return False
        values = self.trainer.values()
        probe = self.X[self.rng.choice(len(self.X), min(len(self.X), 2048), replace=False)]
        log_density = logsumexp(CompiledDensity.evaluate(self.spec, values, probe), axis=-1)  # [m, R]
        fresh = network_values(self.spec, self.rng)
        loc, logits = self.spec.slot("loc"), MixtureSpec.LOGITS
        spread = self.spec.slot(self.spec.base_names[1])
        for r, k in collapsed:
            values[loc][r, k] = probe[np.argmin(log_density[:, r])]
            values[logits][r, k] = logsumexp(np.delete(values[logits][r], k)) - np.log(K - 1)
            if self.spec.base == "gmm":  # a collapsed covariance is no start: the data's whole spread is
                values[spread][r, k] = _whitening_of_all(self.X)
            for i, value in enumerate(fresh, start=MixtureSpec.NETWORKS):
                values[i][r, k] = value[r, k]
            self.trainer.reset_component(r, k)
            reseeds.append({"epoch": int(self.record.epochs), "restart": int(r), "component": int(k)})
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
