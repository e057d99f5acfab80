"""The fitting loop: chunks of compiled epochs for all restarts, with the guards that run between chunks.

Between two chunks the loop runs the E-step (for EM), checks every restart for divergence (rolling a diverged
restart back to its last weights whose loss was seen to be finite, and freezing it), re-seeds collapsed
components, applies ``tol`` and calls the user's callback. What it saw is returned as a :class:`FitRecord`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
from scipy.special import logsumexp, softmax
from tqdm.auto import tqdm

from nfmix.initialise import network_values
from nfmix.train import CompiledDensity, Trainer, data_tensor


@dataclasses.dataclass
class FitRecord:
    """What one fit saw, per restart: losses by epoch, the M-step objective (EM), re-seeds and divergences."""

    nll: list = dataclasses.field(default_factory=list)  # chunks of [n_epochs, R]
    objective: list = dataclasses.field(default_factory=list)
    reseeds: list = dataclasses.field(default_factory=list)
    diverged: list = dataclasses.field(default_factory=list)
    start_nll: np.ndarray | None = None  # [R], at the starting weights: what "the loss rose" is measured from
    e_steps: int = 0
    epochs: int = 0
    converged: bool = False
    seconds: float = 0.0


class FitLoop:
    """Trains every restart of one fit to the end of its budget, a stopping rule, or the last live restart."""

    def __init__(self, estimator, trainer: Trainer, X: np.ndarray, rng: np.random.RandomState,
                 partition: np.ndarray | None = None, init_epochs: int = 0):
        self.est = estimator
        self.init_epochs = init_epochs if partition is not None else 0
        # The starting partition as hard responsibilities [n, R, K], learnt with the weights at its proportions.
        self.start = np.eye(trainer.spec.n_components, dtype=np.float32)[partition.T] if self.init_epochs else None
        self.trainer = trainer
        self.spec = trainer.spec
        self.X = X
        self.X_tensor = data_tensor(X)  # shares X's memory where it can
        self.rng = rng
        self.record = FitRecord()

    @property
    def check_every(self) -> int:
        if self.est.algorithm != "mle":
            return self.est.m_step_epochs
        return self.est.check_every or (100 if self.est.batch_size >= len(self.X) else 1)

    def run(self, on_check=None) -> FitRecord:
        """``on_check(restart, epoch)`` is called after each chunk with the restart that is currently best."""
        est, record = self.est, self.record
        started, previous = time.perf_counter(), None
        record.start_nll = self.final_losses()
        with tqdm(total=est.epochs, disable=not est.verbose, desc="epochs", unit="ep") as bar:
            while record.epochs < est.epochs:
                warming_up = record.epochs < self.init_epochs
                end = self.init_epochs if warming_up else est.epochs
                n_epochs = min(self.check_every, end - record.epochs)
                events = len(record.diverged) + len(record.reseeds)
                if warming_up:
                    responsibilities = self.start
                else:
                    responsibilities = self._e_step() if est.algorithm != "mle" else None
                frozen = self.trainer.active.numpy() == 0
                chunk = self.trainer.run_epochs(self.X_tensor, n_epochs, seed=int(self.rng.randint(2**31 - 1)),
                                                responsibilities=responsibilities)
                chunk[:, :, frozen] = np.nan  # a stopped restart's record ends where it stopped
                record.epochs += n_epochs
                bar.update(n_epochs)
                self._guard_divergence(chunk)
                record.nll.append(chunk[0])
                record.objective.append(chunk[1])
                if not self.trainer.active.numpy().any():
                    break
                current = np.where(self.trainer.active.numpy() > 0, chunk[0, -1], np.inf)
                best = int(np.argmin(current))
                bar.set_postfix(loss=f"{current[best]:.4f}")
                if on_check is not None:
                    on_check(best, record.epochs)
                # tol compares the best restart with itself; a divergence or re-seed makes the comparison moot.
                # The warm-up on a fixed partition is another objective: tol starts with the chosen algorithm.
                undisturbed = len(record.diverged) + len(record.reseeds) == events and not warming_up
                if est.tol is not None and previous is not None and undisturbed and previous[best] - current[best] < est.tol:
                    record.converged = True
                    break
                previous = current
                # Re-seed only while epochs remain to train the new component: never into the kept model.
                if est.reseed and est.algorithm == "mle" and self.init_epochs <= record.epochs < est.epochs:
                    self._reseed_collapsed()
        record.seconds = time.perf_counter() - started
        return record

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
                          f"{self.est.learning_rate})", RuntimeWarning, stacklevel=4)
        trainer.take_snapshot(live & ~failed)

    def final_losses(self) -> np.ndarray:
        """Each restart's mean NLL on X at its current weights; inf where that is not finite (never kept then)."""
        nll = -logsumexp(CompiledDensity.evaluate(self.spec, self.trainer.tensors(), self.X), axis=-1).mean(axis=0)
        return np.where(np.isfinite(nll), nll, np.inf)  # nan_to_num would turn +inf into float32's max

    def _e_step(self) -> np.ndarray:
        """Responsibilities ``[n, R, K]`` and the weights in closed form; re-seeds an emptied component first."""
        self.record.e_steps += 1
        for _ in range(2):
            resp = softmax(CompiledDensity.evaluate(self.spec, self.trainer.tensors(), self.X), axis=-1)
            if self.est.algorithm == "em_hard":
                resp = np.eye(self.spec.n_components, dtype=np.float32)[resp.argmax(-1)]
            logits = np.log(np.maximum(resp.mean(axis=0), 1e-12))
            live = self.trainer.active.numpy()[:, None] > 0  # a stopped restart keeps its last good weights
            self.trainer.set_logits(np.where(live, logits, self.trainer.logits()))
            if not (self.est.reseed and self._reseed_collapsed()):
                break
        return resp.astype(np.float32)

    def _reseed_collapsed(self) -> bool:
        """Move each collapsed component (weight < min_weight) to the data point its restart explains worst."""
        K = self.spec.n_components
        min_weight = self.est.min_weight if self.est.min_weight is not None else 0.1 / K
        weights = softmax(self.trainer.logits(), axis=-1)
        collapsed = np.argwhere((weights < min_weight) & (self.trainer.active.numpy()[:, None] > 0))
        budget = 2 * K  # per restart, so a hopeless restart cannot loop forever
        reseeds = self.record.reseeds
        collapsed = [(r, k) for r, k in collapsed if sum(e["restart"] == r for e in reseeds) < budget]
        if not collapsed or K == 1:
            return False
        values = self.trainer.values()
        probe = self.X[self.rng.choice(len(self.X), min(len(self.X), 2048), replace=False)]
        log_density = logsumexp(CompiledDensity.evaluate(self.spec, values, probe), axis=-1)  # [m, R]
        fresh = network_values(self.spec, self.rng)
        for r, k in collapsed:
            values[1][r, k] = probe[np.argmin(log_density[:, r])]
            values[0][r, k] = logsumexp(np.delete(values[0][r], k)) - np.log(K - 1)
            for i, value in enumerate(fresh, start=3):
                values[i][r, k] = value[r, k]
            self.trainer.reset_component(r, k)
            reseeds.append({"epoch": int(self.record.epochs), "restart": int(r), "component": int(k)})
        self.trainer.set_values(values)
        return True
