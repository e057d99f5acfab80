"""The Python driver of a fit: chunks of compiled epochs (:mod:`nfmix.train`) for all restarts, and the guards and
rules that run between chunks.

Between two chunks the loop runs the E-step (for EM), checks every restart for divergence (rolling a diverged
restart back to its last weights whose loss was seen to be finite, and freezing it), re-seeds collapsed
components, tracks the held-out likelihood (early stopping), applies ``tol`` and calls the user's callback.
Its settings come as one frozen :class:`FitConfig`; what it saw is returned as a :class:`FitRecord`.
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
from nfmix.initialise import network_values
from nfmix.inference import CompiledDensity
from nfmix.train import Trainer, data_tensor


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
    best_validation_nll: np.ndarray | None = None  # [R]: what restarts are ranked by under early stopping
    start_nll: np.ndarray | None = None  # [R], at the starting weights: what "the loss rose" is measured from
    e_steps: int = 0
    epochs: int = 0
    converged: bool = False
    seconds: float = 0.0


class FitLoop:
    """Trains every restart of one fit to the end of its budget, a stopping rule, or the last live restart."""

    def __init__(self, config: FitConfig, trainer: Trainer, X: np.ndarray, rng: np.random.RandomState,
                 partition: np.ndarray | None = None, validation: np.ndarray | None = None):
        self.config = config
        # The starting partition as hard responsibilities [n, R, K], learnt with the weights at its proportions.
        self.start = (np.eye(trainer.spec.n_components, dtype=np.float32)[partition.T]
                      if config.init_epochs else None)
        self.trainer = trainer
        self.spec = trainer.spec
        self.X = X
        self.X_tensor = data_tensor(X)  # shares X's memory where it can
        self.validation = validation
        self.rng = rng
        self.record = FitRecord()
        self._checks_since_best = np.zeros(self.spec.n_restarts, int)

    def run(self, on_check=None) -> FitRecord:
        """``on_check(restart, epoch)`` is called after each chunk with the restart that is currently best."""
        config, record = self.config, self.record
        started, previous = time.perf_counter(), None
        record.start_nll = self.final_losses()
        if self.validation is not None:
            self._start_validation()
        with _progress_bar(config) as bar:
            while record.epochs < config.epochs:
                warming_up = record.epochs < config.init_epochs
                events = len(record.diverged) + len(record.reseeds)
                chunk = self._train_chunk(warming_up)
                bar.update(chunk.shape[1])
                self._guard_divergence(chunk)
                record.nll.append(chunk[0])
                record.objective.append(chunk[1])
                if self.validation is not None:
                    self._track_validation(counting=not warming_up)
                if not self.trainer.active.numpy().any():
                    record.converged = bool(record.stopped)  # every restart stopped early (or diverged)
                    break
                current = np.where(self.trainer.active.numpy() > 0, chunk[0, -1], np.inf)
                best = int(np.argmin(current))
                bar.set_postfix(loss=f"{current[best]:.4f}", refresh=False)  # drawn at the next update
                if on_check is not None:
                    on_check(best, record.epochs)
                # tol compares the best restart with itself; a divergence or re-seed makes the comparison moot.
                # The warm-up on a fixed partition is another objective: tol starts with the chosen algorithm.
                undisturbed = len(record.diverged) + len(record.reseeds) == events and not warming_up
                if (config.tol is not None and self.validation is None and previous is not None and undisturbed
                        and previous[best] - current[best] < config.tol):
                    record.converged = True
                    break
                previous = current
                # Re-seed only while epochs remain to train the new component: never into the kept model.
                if config.reseed and config.algorithm == "mle" and config.init_epochs <= record.epochs < config.epochs:
                    self._reseed_collapsed()
        if self.validation is not None:
            self._restore_best_validation()
        record.seconds = time.perf_counter() - started
        return record

    def _train_chunk(self, warming_up: bool) -> np.ndarray:
        """One chunk of epochs (the warm-up's, or an E-step and its M-step for EM): losses ``[2, n_epochs, R]``."""
        config, record = self.config, self.record
        end = config.init_epochs if warming_up else config.epochs
        n_epochs = min(config.check_every, end - record.epochs)
        if warming_up:
            responsibilities = self.start
        else:
            responsibilities = self._e_step() if config.algorithm != "mle" else None
        frozen = self.trainer.active.numpy() == 0
        chunk = self.trainer.run_epochs(self.X_tensor, n_epochs, seed=int(self.rng.randint(2**31 - 1)),
                                        responsibilities=responsibilities)
        chunk[:, :, frozen] = np.nan  # a stopped restart's record ends where it stopped
        record.epochs += n_epochs
        return chunk

    # ------------------------------------------------------------------ guards
    def _guard_divergence(self, chunk: np.ndarray) -> None:
        """Roll back and freeze each live restart whose loss, or whose new weights, are no longer finite.

        The rollback target is the restart's snapshot: its weights at the end of the last chunk whose losses were
        all finite and whose final weights were finite too (the check costs no copy of the weights).
        """
        trainer = self.trainer
        live = trainer.active.numpy() > 0
        failed = live & ~(np.isfinite(chunk).all(axis=(0, 1)) & trainer.finite_restarts())
        if failed.any():
            trainer.restore(failed)
            trainer.freeze(np.flatnonzero(failed))
        for r in np.flatnonzero(failed):
            chunk[:, :, r] = np.nan
            self.record.diverged.append({"epoch": self.record.epochs, "restart": int(r)})
            warnings.warn(f"restart {r}: the loss or the weights became NaN/inf by epoch {self.record.epochs}; "
                          f"restored its last weights with a finite loss and stopped it (lower learning_rate="
                          f"{self.config.learning_rate})", RuntimeWarning, stacklevel=4)
        trainer.take_snapshot(live & ~failed)

    def _mean_nll(self, X: np.ndarray) -> np.ndarray:
        """Each restart's mean NLL on ``X`` at its current weights, ``[R]``; inf where it is not finite."""
        nll = -logsumexp(CompiledDensity.evaluate(self.spec, self.trainer.tensors(), X), axis=-1).mean(axis=0)
        return np.where(np.isfinite(nll), nll, np.inf)  # nan_to_num would turn +inf into float32's max

    def final_losses(self) -> np.ndarray:
        """Each restart's mean NLL on the training rows at its current weights; inf where that is not finite."""
        return self._mean_nll(self.X)

    # ------------------------------------------------------------------ early stopping
    def _start_validation(self) -> None:
        """The starting weights are every restart's first best: a fit never ends worse on held-out data."""
        nll = self._mean_nll(self.validation)
        self.record.validation_nll.append(nll)
        self.record.validation_epochs.append(0)
        self.record.best_validation_nll = nll.copy()
        self.trainer.remember_best(np.ones(self.spec.n_restarts, bool))

    def _track_validation(self, counting: bool) -> None:
        """Keep each restart's best held-out weights; stop one that has not improved for ``n_iter_no_change``
        checks (by more than ``tol``). The warm-up's checks keep weights but do not use up the patience."""
        config, record = self.config, self.record
        live = self.trainer.active.numpy() > 0
        nll = np.where(live, self._mean_nll(self.validation), np.nan)
        record.validation_nll.append(nll)
        record.validation_epochs.append(record.epochs)
        best = record.best_validation_nll
        improved = live & (nll < best - (config.tol or 0.0))
        better = live & (nll < best)  # kept even below tol: the best weights are the best seen
        best[better] = nll[better]
        self.trainer.remember_best(better)
        if counting:
            self._checks_since_best[improved] = 0
            self._checks_since_best[live & ~improved] += 1
        stop = live & (self._checks_since_best >= config.n_iter_no_change)
        if stop.any():
            self.trainer.freeze(np.flatnonzero(stop))
            record.stopped += [{"epoch": record.epochs, "restart": int(r)} for r in np.flatnonzero(stop)]

    def _restore_best_validation(self) -> None:
        self.trainer.restore_best(np.isfinite(self.record.best_validation_nll))

    # ------------------------------------------------------------------ EM and re-seeding
    def _e_step(self) -> np.ndarray:
        """Responsibilities ``[n, R, K]`` and the weights in closed form; re-seeds an emptied component first."""
        self.record.e_steps += 1
        for _ in range(2):
            resp = softmax(CompiledDensity.evaluate(self.spec, self.trainer.tensors(), self.X), axis=-1)
            if self.config.algorithm == "em_hard":
                resp = np.eye(self.spec.n_components, dtype=np.float32)[resp.argmax(-1)]
            logits = np.log(np.maximum(resp.mean(axis=0), 1e-12))
            live = self.trainer.active.numpy()[:, None] > 0  # a stopped restart keeps its last good weights
            self.trainer.set_logits(np.where(live, logits, self.trainer.logits()))
            if not (self.config.reseed and self._reseed_collapsed()):
                break
        return resp.astype(np.float32)

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
    return tqdm(total=config.epochs, disable=not config.verbose, desc="epochs", unit="ep",
                mininterval=0.1 if drawn_in_place else 15.0)


def _whitening_of_all(X: np.ndarray) -> np.ndarray:
    """The lower-triangular ``W`` that whitens the whole data set (``W^T W`` its precision)."""
    covariance = np.atleast_2d(np.cov(np.asarray(X, np.float64), rowvar=False)) + 1e-6 * np.eye(X.shape[1])
    return np.linalg.inv(np.linalg.cholesky(covariance))
