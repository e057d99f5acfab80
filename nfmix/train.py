"""Compiled training: whole chunks of epochs inside one ``tf.function``, restarts side by side (the Python driver
that calls it is :mod:`nfmix.fitting`; the compiled density for scoring is :mod:`nfmix.inference`).

A fit is one compiled call, or a few (:meth:`Trainer.run_checks`, driven by :mod:`nfmix.fitting`): a
``tf.while_loop`` over checks, each an E-step (for EM), a chunk of epochs, the divergence guard, early stopping
and ``tol``, and inside each chunk a ``tf.while_loop`` over the epochs and their shuffled minibatches, carrying
the parameters and Adam's moments as loop tensors. The variables are read once at the start of a call and
written once at its end. Restarts are independent (Adam is elementwise and each restart's loss touches only its
own slice), and a per-restart ``active`` mask freezes a restart that diverged or stopped while the others train
on. :meth:`Trainer.run_epochs` trains one plain chunk of epochs (the benchmarks time it).

Compiled functions take every parameter as an argument and are shared by every model with the same
:class:`~nfmix.flows.MixtureSpec`, so only the first fit of a configuration in a process pays for tracing (and a
fit whose stopped restarts are compacted out, once for each shorter restart axis).
"""

from __future__ import annotations

import threading
from functools import partial

import numpy as np

from nfmix._tf import tf
from nfmix.flows import FlowMixture, MixtureSpec
from nfmix.inference import ROW_BLOCK, SharedCompiled, scoring_rows

LOSS_CAPACITY = 128  # epochs per call of the compiled chunk: its loss buffer needs a static size for XLA
EPOCH_CAPACITY = 2048  # epochs per compiled call of a fit's checks
CHECK_CAPACITY = 512  # checks per compiled call of a fit's checks
# Why a compiled call of checks ended: its budget of checks or epochs, a collapsed component (before a check's
# M-step, or after a gradient ML check), the tol rule, no restart left training, or half of them stopped (for the
# driver to compact the restart axis).
RUNNING, COLLAPSED_BEFORE, COLLAPSED_AFTER, CONVERGED, ALL_STOPPED, SHRUNK = range(6)


class Packing:
    """The trainable parameters packed component-major into one ``[R, K, P]`` matrix.

    Every parameter has leading dimensions ``(R, K)``, so Adam is a handful of fused ops on one matrix, and one
    restart's mask (``[R, 1, 1]``) or one component's step count (``[R, K, 1]``) is a broadcast column.
    """

    def __init__(self, spec: MixtureSpec):
        self.spec = spec
        self.trainable = [i for i, flag in enumerate(spec.trainable()) if flag]
        self.fixed = [i for i, flag in enumerate(spec.trainable()) if not flag]
        self.shapes = [spec.shapes()[i] for i in self.trainable]
        self.sizes = [int(np.prod(shape[2:], dtype=int)) for shape in self.shapes]

    def pack(self, values, lib=tf):
        R, K = self.spec.batch_shape
        return lib.concat([lib.reshape(values[i], [R, K, -1]) for i in self.trainable], axis=-1)

    def unpack(self, matrix, fixed_values) -> list:
        """The full parameter list from the packed trainables and the fixed ones (in ``self.fixed`` order)."""
        if isinstance(matrix, np.ndarray):
            parts = np.split(matrix, np.cumsum(self.sizes)[:-1], axis=-1)
            trainables = [part.reshape(shape) for part, shape in zip(parts, self.shapes)]
        else:
            parts = tf.split(matrix, self.sizes, axis=-1)
            trainables = [tf.reshape(part, shape) for part, shape in zip(parts, self.shapes)]
        values = [None] * len(self.spec.names())
        for i, value in zip(self.trainable, trainables):
            values[i] = value
        for i, value in zip(self.fixed, fixed_values):
            values[i] = value
        return values


class Trainer:
    """Maximum likelihood (``responsibilities=None``) or EM M-step epochs (fixed responsibilities) with Adam.

    Adam uses Keras' defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7). It is written out here so that one
    re-seeded component restarts its own moments and step count (and so its bias correction), and so that a
    frozen restart is masked. The Trainer owns the parameters and optimiser state of one fit, as variables.
    """

    def __init__(
        self,
        spec: MixtureSpec,
        values,
        learning_rate: float,
        batch_size: int,
        jit_compile: bool = True,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ):
        self.spec = spec
        self.packing = Packing(spec)
        self.learning_rate = float(learning_rate)
        self.loop = CompiledLoop.get((spec, int(batch_size), bool(jit_compile), beta_1, beta_2, epsilon))
        packed = self.packing.pack([np.asarray(v, np.float32) for v in values], lib=np)
        self.packed = tf.Variable(packed, trainable=False, name="parameters")
        self.fixed = [tf.Variable(np.asarray(values[i], np.float32), trainable=False) for i in self.packing.fixed]
        self.m = tf.Variable(tf.zeros_like(packed), trainable=False, name="adam_m")
        self.v = tf.Variable(tf.zeros_like(packed), trainable=False, name="adam_v")
        self.step = tf.Variable(tf.zeros(spec.batch_shape), trainable=False, name="adam_step")
        self.active = tf.Variable(tf.ones([spec.n_restarts]), trainable=False, name="active_restarts")
        # The last weights that were finite at the end of a chunk whose losses were all finite.
        self.snapshot = Checkpoint(self)
        # Early stopping's state, from start_validation: each restart's best held-out weights and NLL, the best NLL
        # seen and the checks since it, and the start's held-out log-densities.
        self.best = self.best_nll = self.best_seen = self.since_best = self.start_rows = None

    def values(self) -> list[np.ndarray]:
        """Every parameter of every restart, as arrays in ``spec.names()`` order."""
        return self.packing.unpack(self.packed.numpy(), [v.numpy() for v in self.fixed])

    def tensors(self) -> list:
        return self.packing.unpack(self.packed.read_value(), [v.read_value() for v in self.fixed])

    def set_values(self, values) -> None:
        self.packed.assign(self.packing.pack([np.asarray(v, np.float32) for v in values], lib=np))
        for var, i in zip(self.fixed, self.packing.fixed):
            var.assign(np.asarray(values[i], np.float32))

    def run_epochs(self, X, n_epochs: int, seed: int, responsibilities=None) -> np.ndarray:
        """Train ``n_epochs`` epochs; returns each epoch's mean mixture NLL and M-step objective, ``[2, n_epochs, R]``.

        Both are averaged over the epoch's minibatches, each evaluated before its update. For maximum
        likelihood the two are the same number. (A fit trains through :meth:`run_checks`; this is the plain
        chunk of epochs that it runs, which the benchmarks time.)
        """
        extra = () if responsibilities is None else (tf.convert_to_tensor(responsibilities, tf.float32),)
        epochs = self.loop.epochs(responsibilities is not None, self.loop.batch_size >= X.shape[0])
        opt_state = (self.packed.read_value(), self.m.read_value(), self.v.read_value(), self.step.read_value())
        fixed = [var.read_value() for var in self.fixed]
        parts = []
        # Each call is told how many epochs came before it, so the minibatch order is that of one long call.
        for done in range(0, max(int(n_epochs), 1), LOSS_CAPACITY):
            count = min(LOSS_CAPACITY, int(n_epochs) - done)
            opt_state, losses, _, _ = epochs(
                opt_state,
                fixed,
                self.active.read_value(),
                tf.constant(self.learning_rate, tf.float32),
                X,
                tf.constant(count),
                tf.constant([seed, done], tf.int32),
                *extra,
            )
            parts.append(np.moveaxis(losses.numpy()[:count], 0, 1))
        for var, value in zip((self.packed, self.m, self.v, self.step), opt_state):
            var.assign(value)
        return np.concatenate(parts, axis=1)

    def run_checks(self, X, mode: str, controls: dict, seeds: np.ndarray, given=None, X_val=None) -> dict:
        """Up to ``controls["n_checks"]`` checks of a fit in one compiled call (:meth:`CompiledLoop._checks`);
        returns its outcome as arrays: ``losses [2, epochs, R]``, ``checks``, ``epochs``, ``reason``, ..."""
        variables = {
            "values": self.packed,
            "fixed": self.fixed,
            "m": self.m,
            "v": self.v,
            "step": self.step,
            "active": self.active,
            "snapshot": self.snapshot.packed,
            "snapshot_fixed": self.snapshot.fixed,
        }
        if X_val is not None:
            variables.update(
                best=self.best.packed,
                best_fixed=self.best.fixed,
                best_nll=self.best_nll,
                best_seen=self.best_seen,
                since_best=self.since_best,
                start_rows=self.start_rows,
            )
        controls = {name: tf.constant(value) for name, value in controls.items()}
        seeds = tf.constant(np.resize(np.asarray(seeds, np.int32), CHECK_CAPACITY))
        if given is not None:
            given = tf.convert_to_tensor(given, tf.float32)
        outcome = {
            name: value.numpy()
            for name, value in self.loop.fit_checks(
                variables, tf.constant(self.learning_rate, tf.float32), X, given, X_val, controls, seeds, mode
            ).items()
        }
        outcome["losses"] = np.moveaxis(outcome["losses"][: outcome["epochs"]], 0, 1)  # [2, epochs, R]
        if "held_out" in outcome:
            outcome["held_out"] = outcome["held_out"][: outcome["checks"]]
        return outcome

    def logits(self) -> np.ndarray:
        """The mixture logits ``[R, K]``: the first packed column (logits are always trained, and come first)."""
        return self.packed[:, :, MixtureSpec.LOGITS].numpy()

    def restart_values(self, restart: int) -> list[np.ndarray]:
        """One restart's parameters, as arrays in ``spec.names()`` order (no copy of the other restarts)."""
        return [np.asarray(t[restart]) for t in self.tensors()]

    def start_validation(self, start_rows: np.ndarray, held_out_nll: np.ndarray) -> None:
        """Early stopping starts: the current weights are every restart's best, at ``held_out_nll [R]``, with
        their log-density of each held-out row ``start_rows [n_held_out, R]``, which later weights are compared
        with."""
        held_out_nll = np.asarray(held_out_nll, np.float32)
        self.best = Checkpoint(self)
        self.start_rows = tf.Variable(
            np.asarray(start_rows, np.float32), trainable=False, name="start_held_out_log_density"
        )
        self.best_nll = tf.Variable(held_out_nll, trainable=False, name="best_held_out_nll")  # of the kept weights
        self.best_seen = tf.Variable(held_out_nll, trainable=False, name="best_seen_held_out_nll")  # for patience
        self.since_best = tf.Variable(
            tf.zeros([self.spec.n_restarts], tf.int32), trainable=False, name="checks_since_best"
        )

    def subset(self, rows) -> Trainer:
        """A Trainer of the restarts ``rows`` alone, each with its parameters, Adam state, active flag, divergence
        snapshot and early-stopping state: a shorter restart axis, so that restarts which stopped cost no more
        arithmetic (its compiled functions are those of ``len(rows)`` restarts)."""
        rows = np.asarray(rows, np.int64)
        loop = self.loop
        trainer = Trainer(
            self.spec.with_restarts(len(rows)),
            [value[rows] for value in self.values()],
            self.learning_rate,
            loop.batch_size,
            loop.jit_compile,
            loop.beta_1,
            loop.beta_2,
            loop.epsilon,
        )
        for mine, theirs in ((self.m, trainer.m), (self.v, trainer.v), (self.step, trainer.step)):
            theirs.assign(mine.numpy()[rows])
        trainer.active.assign(self.active.numpy()[rows])
        self.snapshot.copy_rows_to(trainer.snapshot, rows)
        if self.best is not None:
            trainer.best = Checkpoint(trainer)
            self.best.copy_rows_to(trainer.best, rows)
            trainer.start_rows = tf.Variable(self.start_rows.numpy()[:, rows], trainable=False)
            trainer.best_nll = tf.Variable(self.best_nll.numpy()[rows], trainable=False)
            trainer.best_seen = tf.Variable(self.best_seen.numpy()[rows], trainable=False)
            trainer.since_best = tf.Variable(self.since_best.numpy()[rows], trainable=False)
        return trainer

    def best_values(self, row: int) -> list[np.ndarray]:
        """The best weights on held-out data of the restart in ``row``, as arrays in ``spec.names()`` order."""
        return self.best.restart_values(row)

    def restore_best(self, restarts: np.ndarray) -> None:
        """Put the restarts flagged ``[R]`` back to their best weights on held-out data."""
        self.best.put_back(restarts)

    def reset_component(self, restart: int, component: int) -> None:
        """Fresh Adam moments and step count for one re-seeded (restart, component)."""
        for var in (self.m, self.v):
            var[restart, component].assign(tf.zeros_like(var[restart, component]))
        self.step[restart, component].assign(0.0)


class Checkpoint:
    """A copy of a Trainer's parameters, trained and fixed, that the compiled loop keeps restart by restart (the
    divergence snapshot, the best held-out weights) and :meth:`put_back` restores.

    The fixed ones belong in it too: a re-seed moves a component's base (its location, a GMM base's whitening)
    without training it, and weights put back must be those of one moment, not networks of one and bases of
    another.
    """

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.packed = tf.Variable(trainer.packed, trainable=False)
        self.fixed = [tf.Variable(var, trainable=False) for var in trainer.fixed]

    def copy_rows_to(self, other: Checkpoint, rows: np.ndarray) -> None:
        """Copy the restarts ``rows`` of this checkpoint into ``other``, a checkpoint of ``len(rows)`` restarts."""
        other.packed.assign(self.packed.numpy()[rows])
        for mine, theirs in zip(self.fixed, other.fixed):
            theirs.assign(mine.numpy()[rows])

    def restart_values(self, restart: int) -> list[np.ndarray]:
        """One restart's parameters in this checkpoint, as arrays in ``spec.names()`` order."""
        packing = self.trainer.packing
        values = packing.unpack(self.packed.numpy(), [var.numpy() for var in self.fixed])
        return [np.asarray(value[restart]) for value in values]

    def put_back(self, restarts: np.ndarray) -> None:
        restarts = np.asarray(restarts, bool)
        self.trainer.packed.assign(_where_restart(restarts, self.packed, self.trainer.packed))
        for copy, var in zip(self.fixed, self.trainer.fixed):
            var.assign(_where_restart(restarts, copy, var))


class CompiledLoop(SharedCompiled):
    """A fit's compiled functions, one set per :class:`MixtureSpec` and optimiser setting: the checks of a fit
    (a TensorFlow graph over the fit's variables) and, inside them, the XLA-compiled chunk of Adam epochs.

    The checks read the variables (parameters, Adam's moments and step counts, the active mask, the snapshot and
    best weights) once at the start of a call and write them once at its end, keeping no extra copy.
    """

    def __init__(self, spec, batch_size, jit_compile, beta_1, beta_2, epsilon):
        self.spec = spec
        self.packing = Packing(spec)
        self.batch_size = batch_size
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.jit_compile = jit_compile
        self._fits = {}  # (mode, full batch, early stopping) -> the checks' function
        self._epoch_functions = {}  # (EM, full batch) -> the compiled chunk of epochs
        self.row_block = scoring_rows(spec)
        self._lock = threading.RLock()  # re-entered: tracing the checks builds the chunk of epochs

    def epochs(self, em: bool, full_batch: bool):
        """The compiled chunk of at most :data:`LOSS_CAPACITY` epochs, a pure function of the optimiser state:
        ``(opt_state, fixed, active, learning_rate, X, n_epochs, seed[, responsibilities]) -> (opt_state,
        losses [LOSS_CAPACITY, 2, R], finite [R], last [2, R])``. Its signature is fixed, so it is traced once
        for any number of rows (a new data size costs an XLA compile for that shape, no retracing)."""
        key = (em, full_batch)
        with self._lock:
            if key not in self._epoch_functions:
                R, K = self.spec.batch_shape
                packed = tf.TensorSpec([R, K, sum(self.packing.sizes)], tf.float32)
                signature = [
                    (packed, packed, packed, tf.TensorSpec([R, K], tf.float32)),
                    [tf.TensorSpec(self.spec.shapes()[i], tf.float32) for i in self.packing.fixed],
                    tf.TensorSpec([R], tf.float32),
                    tf.TensorSpec([], tf.float32),
                    tf.TensorSpec([None, self.spec.n_features], tf.float32),
                    tf.TensorSpec([], tf.int32),
                    tf.TensorSpec([2], tf.int32),
                ]
                if em:
                    signature.append(tf.TensorSpec([None, R, K], tf.float32))
                # No autograph: the loops are written as tf.while_loop, and converting the code took most of the
                # tracing time of a first fit (about 4 of 5 s in a fresh process).
                self._epoch_functions[key] = tf.function(
                    partial(self._epochs_pure, full_batch=full_batch),
                    input_signature=signature,
                    jit_compile=self.jit_compile,
                    autograph=False,
                )
            return self._epoch_functions[key]

    # ------------------------------------------------------------------ whole fits: checks inside the loop
    def tracing_counts(self) -> dict:
        """How often each compiled function was traced: ``("checks", mode, full batch, early stopping)`` and
        ``("epochs", EM, full batch)``."""
        counts = {("checks", *key): f.experimental_get_tracing_count() for key, f in self._fits.items()}
        counts.update(
            {("epochs", *key): f.experimental_get_tracing_count() for key, f in self._epoch_functions.items()}
        )
        return counts

    def fit_checks(self, variables: dict, learning_rate, X, given, X_val, controls: dict, seeds, mode: str):
        """Run up to ``controls["n_checks"]`` checks (:meth:`_checks`) in one compiled call; returns its outcome."""
        full_batch = self.batch_size >= X.shape[0]
        validated = X_val is not None
        key = (mode, full_batch, validated)
        with self._lock:
            function = self._fits.get(key)
            if function is None:
                # The checks run as a TensorFlow graph and each chunk of epochs inside them as the XLA function
                # below: XLA would compile the E-step's and the held-out score's flows again, costing seconds of
                # compile time per configuration for work that TensorFlow's kernels do as fast.
                function = tf.function(partial(self._checks, mode=mode, full_batch=full_batch), autograph=False)
                R, K = self.spec.batch_shape
                rows = tf.TensorSpec([None, self.spec.n_features], tf.float32)
                function.get_concrete_function(
                    variables,
                    tf.TensorSpec([], tf.float32),
                    rows,
                    tf.TensorSpec([None, R, K], tf.float32) if mode == "fixed" else None,
                    rows if validated else None,
                    {k: tf.TensorSpec(v.shape, v.dtype) for k, v in controls.items()},
                    tf.TensorSpec([CHECK_CAPACITY], tf.int32),
                )
                self._fits[key] = function
        return function(variables, learning_rate, X, given, X_val, controls, seeds)

    def _checks(self, variables, learning_rate, X, given, X_val, controls, seeds, mode, full_batch):
        """A fit's checks as one ``tf.while_loop``. A check is, in order:

        1. the E-step (``mode`` "em_soft" / "em_hard"): responsibilities, and the weights in closed form;
        2. its epochs (the M-step for EM; ``given`` responsibilities for the warm-up, ``mode="fixed"``);
        3. the divergence guard: a restart whose losses or weights are no longer finite goes back to its
           snapshot (its weights at the end of its last good check) and is frozen;
        4. early stopping (``X_val``): each restart's best held-out weights are kept (where they beat the start
           by ``significance`` standard errors of the per-row gain), and a restart stops after ``patience``
           checks without an improvement of more than ``validation_tol``;
        5. ``tol`` on the best restart's training loss.

        The loop ends early, for the Python driver, when a component has collapsed (its re-seeding draws from the
        fit's NumPy generator), on ``tol``, when no restart is left training, or when only ``shrink_at`` are (the
        driver then compacts the stopped ones out of the restart axis).
        """
        c = controls
        R, K = self.spec.batch_shape
        validated = X_val is not None
        em = mode in ("em_soft", "em_hard")
        v = variables
        # The variables are read once here and written once at the end; in between they are loop tensors.
        state = {name: tf.nest.map_structure(lambda var: var.read_value(), var) for name, var in v.items()}
        state.update(
            previous=c["previous"],
            diverged_from=tf.fill([R], -1),
            diverged_at=tf.fill([R], -1),
            stopped_at=tf.fill([R], -1),
        )
        losses = tf.TensorArray(tf.float32, size=EPOCH_CAPACITY, element_shape=[2, R])
        held_out = tf.TensorArray(tf.float32, size=CHECK_CAPACITY, element_shape=[R])

        def body(check, epoch, reason, state, losses, held_out):
            state = dict(state)
            live = state["active"] > 0
            collapsed = tf.constant(False)
            responsibilities = given
            if em:
                responsibilities, logits = self._e_step(state["values"], state["fixed"], X, mode)
                column = tf.where(live[:, None], logits, state["values"][:, :, MixtureSpec.LOGITS])
                state["values"] = tf.concat([column[..., None], state["values"][:, :, 1:]], axis=-1)
                # A component re-seeded just before this call trains for a check before it is judged again.
                collapsed = c["reseed"] & ~(c["reseeded"] & (check == 0)) & self._any_collapsed(column, live, c)
            # A collapse before the M-step hands the fit to the driver's re-seeding: this check trains no epoch.
            n_epochs = tf.where(collapsed, 0, tf.minimum(c["epochs_per_check"], c["end_epoch"] - c["epoch0"] - epoch))
            opt_state = (state["values"], state["m"], state["v"], state["step"])
            opt_state, losses, finite, last = self._chunks(
                opt_state,
                state["fixed"],
                state["active"],
                learning_rate,
                X,
                responsibilities,
                n_epochs,
                seeds[check],
                full_batch,
                losses,
                epoch,
            )
            state["values"], state["m"], state["v"], state["step"] = opt_state
            epoch = epoch + n_epochs
            at = c["epoch0"] + epoch  # the fit's epoch count after this check
            ran = ~collapsed
            # 3. Divergence: back to the snapshot, and frozen.
            finite = finite & tf.reduce_all(tf.math.is_finite(state["values"]), axis=[1, 2])
            failed = live & ~finite & ran
            state["values"] = _where_restart(failed, state["snapshot"], state["values"])
            state["fixed"] = [_where_restart(failed, a, b) for a, b in zip(state["snapshot_fixed"], state["fixed"])]
            state["active"] = tf.where(failed, 0.0, state["active"])
            state["diverged_from"] = tf.where(failed, at - n_epochs, state["diverged_from"])
            state["diverged_at"] = tf.where(failed, at, state["diverged_at"])
            live = state["active"] > 0
            keep = live & ran
            state["snapshot"] = _where_restart(keep, state["values"], state["snapshot"])
            state["snapshot_fixed"] = [
                _where_restart(keep, a, b) for a, b in zip(state["fixed"], state["snapshot_fixed"])
            ]
            # 4. Early stopping.
            if validated:
                rows = self._log_density(state["values"], state["fixed"], X_val)  # [n_held_out, R]
                nll = -tf.reduce_mean(rows, axis=0)
                nll = tf.where(live, tf.where(tf.math.is_finite(nll), nll, np.inf), np.nan)
                # Patience follows the best held-out score seen; the weights kept must also beat the start by
                # `significance` standard errors of the per-row gain (0: any gain, the plain rule).
                improved = keep & (nll < state["best_seen"] - c["validation_tol"])
                state["best_seen"] = tf.where(keep & (nll < state["best_seen"]), nll, state["best_seen"])
                gain = rows - state["start_rows"]
                standard_error = tf.math.reduce_std(gain, axis=0) / tf.sqrt(tf.cast(tf.shape(gain)[0], tf.float32))
                clear = (c["significance"] <= 0) | (tf.reduce_mean(gain, axis=0) > c["significance"] * standard_error)
                better = keep & (nll < state["best_nll"]) & clear  # kept even below validation_tol
                state["best_nll"] = tf.where(better, nll, state["best_nll"])
                state["best"] = _where_restart(better, state["values"], state["best"])
                state["best_fixed"] = [
                    _where_restart(better, a, b) for a, b in zip(state["fixed"], state["best_fixed"])
                ]
                counting = c["counting"] & ran
                since = tf.where(improved, 0, tf.where(keep, state["since_best"] + 1, state["since_best"]))
                state["since_best"] = tf.where(counting, since, state["since_best"])
                stop = keep & (state["since_best"] >= c["patience"])
                state["active"] = tf.where(stop, 0.0, state["active"])
                state["stopped_at"] = tf.where(stop, at, state["stopped_at"])
                held_out = held_out.write(check, nll)
            live = state["active"] > 0
            # 5. tol: the best restart against itself one check earlier; a divergence makes the comparison moot.
            current = tf.where(live, last[0], np.inf)
            best = tf.argmin(current, output_type=tf.int32)
            undisturbed = ran & ~tf.reduce_any(failed) & c["counting"] & ~(c["reseeded"] & (check == 0))
            converged = (c["tol"] >= 0) & undisturbed & (tf.gather(state["previous"], best) - current[best] < c["tol"])
            state["previous"] = tf.where(ran, current, state["previous"])
            # Gradient ML re-seeds after a check, while epochs remain to train the new component.
            if mode == "mle":
                in_time = (c["reseed_from"] <= at) & (at < c["total_epochs"])
                collapsed_after = (
                    c["reseed"] & in_time & self._any_collapsed(state["values"][:, :, MixtureSpec.LOGITS], live, c)
                )
            else:
                collapsed_after = tf.constant(False)
            n_live = tf.reduce_sum(tf.cast(live, tf.int32))
            shrunk = (n_live <= c["shrink_at"]) & (n_live < R)
            reason = tf.where(
                collapsed,
                COLLAPSED_BEFORE,
                tf.where(
                    ~tf.reduce_any(live),
                    ALL_STOPPED,
                    tf.where(
                        converged,
                        CONVERGED,
                        tf.where(collapsed_after, COLLAPSED_AFTER, tf.where(shrunk, SHRUNK, RUNNING)),
                    ),
                ),
            )
            return check + tf.cast(ran, tf.int32), epoch, reason, state, losses, held_out

        check, epoch, reason, state, losses, held_out = tf.while_loop(
            lambda check, epoch, reason, *_: (
                (check < c["n_checks"]) & (reason == RUNNING) & (c["epoch0"] + epoch < c["end_epoch"])
            ),
            body,
            (tf.constant(0), tf.constant(0), tf.constant(RUNNING), state, losses, held_out),
        )
        for name, var in v.items():
            tf.nest.map_structure(lambda var, value: var.assign(value), var, state[name])
        outcome = {
            "checks": check,
            "epochs": epoch,
            "reason": reason,
            "losses": losses.stack(),
            **{name: state[name] for name in ("previous", "diverged_from", "diverged_at", "stopped_at")},
        }
        if validated:
            outcome["held_out"] = held_out.stack()
        return outcome

    def _e_step(self, values, fixed, X, mode):
        """Responsibilities ``[n, R, K]`` (soft, or their arg-max) and the log weights they imply ``[R, K]``."""
        weighted = self._weighted_log_prob(values, fixed, X)
        if mode == "em_hard":
            responsibilities = tf.one_hot(tf.argmax(weighted, axis=-1), self.spec.n_components, dtype=tf.float32)
        else:
            responsibilities = tf.nn.softmax(weighted, axis=-1)
        logits = tf.math.log(tf.maximum(tf.reduce_mean(responsibilities, axis=0), 1e-12))
        return responsibilities, logits

    def _any_collapsed(self, logits, live, c):
        """Whether a live restart with re-seeds left has a component below ``min_weight``."""
        small = tf.nn.softmax(logits, axis=-1) < c["min_weight"]
        return tf.reduce_any(small & (live & c["reseeds_left"])[:, None])

    def _chunks(
        self, opt_state, fixed, active, learning_rate, X, responsibilities, n_epochs, seed, full_batch, losses, offset
    ):
        """``n_epochs`` epochs as calls of the compiled epochs, :data:`LOSS_CAPACITY` at a time, each told how
        many came before it (so the minibatch order is that of :meth:`Trainer.run_epochs`); the losses go to
        ``losses[offset:]``. Returns the new state, the losses, whether all were finite ``[R]`` and the last."""
        R = self.spec.n_restarts
        extra = () if responsibilities is None else (responsibilities,)
        epochs = self.epochs(responsibilities is not None, full_batch)

        def chunk_body(done, opt_state, losses, finite, last):
            count = tf.minimum(LOSS_CAPACITY, n_epochs - done)
            opt_state, chunk, chunk_finite, chunk_last = epochs(
                opt_state, fixed, active, learning_rate, X, count, tf.stack([seed, done]), *extra
            )
            losses = losses.scatter(offset + done + tf.range(count), chunk[:count])
            return done + count, opt_state, losses, finite & chunk_finite, chunk_last

        _, opt_state, losses, finite, last = tf.while_loop(
            lambda done, *_: done < n_epochs,
            chunk_body,
            (tf.constant(0), opt_state, losses, tf.ones([R], tf.bool), tf.fill([2, R], np.inf)),
        )
        return opt_state, losses, finite, last

    def _epochs_pure(
        self, opt_state, fixed, active, learning_rate, X, n_epochs, seed, responsibilities=None, *, full_batch
    ):
        losses = tf.TensorArray(tf.float32, size=LOSS_CAPACITY, element_shape=[2, self.spec.n_restarts])
        opt_state, losses, finite, last = self._epochs(
            opt_state,
            fixed,
            active,
            learning_rate,
            X,
            responsibilities,
            n_epochs,
            seed,
            full_batch,
            losses,
            tf.constant(0),
        )
        return opt_state, losses.stack(), finite, last

    def _weighted_log_prob(self, values, fixed, X):
        """``log pi_k + log p_k(x)`` ``[n, R, K]`` for every row, batch by batch as :func:`nfmix.inference.batched`
        scores (the same batches and padding, so the same numbers as scoring)."""
        block = self.row_block
        n = tf.shape(X)[0]
        flows = FlowMixture(self.spec, self.packing.unpack(values, fixed))

        def block_body(b, out):
            rows = X[b * block : tf.minimum((b + 1) * block, n)]
            size = tf.shape(rows)[0]
            padded = tf.pad(rows, [[0, (-size) % ROW_BLOCK], [0, 0]])
            return b + 1, out.write(b, flows.weighted_log_prob(padded)[:size])

        n_blocks = (n + block - 1) // block
        parts = tf.TensorArray(tf.float32, size=n_blocks, infer_shape=False)
        _, parts = tf.while_loop(lambda b, out: b < n_blocks, block_body, (tf.constant(0), parts))
        weighted = parts.concat()
        weighted.set_shape([None, *self.spec.batch_shape])
        return weighted

    def _log_density(self, values, fixed, X):
        """Each restart's log-density of each row of ``X``, ``[n, R]``."""
        return tf.reduce_logsumexp(self._weighted_log_prob(values, fixed, X), axis=-1)

    def _batches(self, n, seed, epoch, full_batch):
        """Index and weight of each minibatch slot; the last batch wraps around with weight 0 (static shapes)."""
        if full_batch:
            return 1, tf.range(n)[None], tf.ones([1, n])
        size = self.batch_size
        n_batches = -(-n // size)
        order = tf.argsort(tf.random.stateless_uniform([n], seed=seed + tf.stack([0, epoch])))
        slots = tf.range(n_batches * size)
        index = tf.reshape(tf.gather(order, slots % n), [n_batches, size])
        weight = tf.reshape(tf.cast(slots < n, tf.float32), [n_batches, size])
        return n_batches, index, weight

    def _epochs(
        self, state, fixed, active, learning_rate, X, responsibilities, n_epochs, seed, full_batch, losses, offset
    ):
        """``n_epochs`` epochs of Adam from ``state``; each epoch's losses ``[2, R]`` go to ``losses[offset + e]``.

        Returns the new state, the losses, whether every epoch's losses were finite per restart ``[R]``, and the
        last epoch's losses ``[2, R]`` (inf after no epoch).
        """
        n = tf.shape(X)[0]  # a tensor: one trace serves every number of rows
        R = self.spec.n_restarts

        def epoch_body(epoch, state, losses, finite, last):
            n_batches, index, weight = self._batches(n, seed, epoch, full_batch)

            def batch_body(b, state, total):
                state, summed = self._step(
                    state, fixed, active, learning_rate, X, responsibilities, index[b], weight[b]
                )
                return b + 1, state, total + summed

            _, state, total = tf.while_loop(
                lambda b, state, total: b < n_batches, batch_body, (tf.constant(0), state, tf.zeros([2, R]))
            )
            loss = total / tf.cast(n, tf.float32)
            finite = finite & tf.reduce_all(tf.math.is_finite(loss), axis=0)
            return epoch + 1, state, losses.write(offset + epoch, loss), finite, loss

        _, state, losses, finite, last = tf.while_loop(
            lambda epoch, *_: epoch < n_epochs,
            epoch_body,
            (tf.constant(0), state, losses, tf.ones([R], tf.bool), tf.fill([2, R], np.inf)),
        )
        return state, losses, finite, last

    def _step(self, state, fixed, active, learning_rate, X, responsibilities, index, weight):
        """One Adam step on one minibatch; returns the new state and each restart's summed NLL and objective."""
        values, m, v, step = state
        xb = tf.gather(X, index)
        with tf.GradientTape() as tape:
            tape.watch(values)
            flows = FlowMixture(self.spec, self.packing.unpack(values, fixed))
            flow_log_prob = flows.flow_log_prob(xb)  # [B, R, K]
            weighted = tf.math.log_softmax(flows.logits, axis=-1) + flow_log_prob
            nll = -tf.reduce_logsumexp(weighted, axis=-1)  # [B, R]: the mixture's negative log-likelihood
            if responsibilities is None:  # maximum likelihood
                objective = nll
            else:  # M-step: -sum_k r_nk log p_k(x_n); the weights are set in closed form by the E-step
                objective = -tf.reduce_sum(tf.gather(responsibilities, index) * flow_log_prob, axis=-1)
            summed = tf.reduce_sum(weight[:, None] * objective, 0)
            loss = tf.reduce_sum(tf.where(active > 0, summed, 0.0)) / tf.reduce_sum(weight)
        grad = tape.gradient(loss, values, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        mask = active[:, None, None]
        grad = tf.where(mask > 0, grad, 0.0)
        step = step + 1.0
        t = step[..., None]  # each component counts its own steps, so a re-seeded one gets Adam's warm-up again
        correction = tf.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m = self.beta_1 * m + (1.0 - self.beta_1) * grad
        v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        values = values - mask * learning_rate * correction * m / (tf.sqrt(v) + self.epsilon)
        summed_nll = tf.reduce_sum(weight[:, None] * tf.stop_gradient(nll), 0)
        return (values, m, v, step), tf.stack([summed_nll, summed])


def _where_restart(mask, chosen, other):
    """``chosen`` for the restarts flagged in ``mask [R]``, ``other`` elsewhere (any trailing shape)."""
    return tf.where(tf.reshape(mask, [-1] + [1] * (len(chosen.shape) - 1)), chosen, other)


def data_tensor(X: np.ndarray):
    """``X`` for the compiled loop: the array's own memory where TensorFlow can use it, else a copy.

    On the CPU, TensorFlow uses a float32 C-contiguous array that starts on a 64-byte boundary in place (DLPack),
    so a fit holds one copy of the data, not two (the image loaders return such arrays). With a GPU the data
    is copied to the device once, as before.
    """
    if (
        isinstance(X, np.ndarray)
        and X.dtype == np.float32
        and X.flags.c_contiguous
        and X.ctypes.data % 64 == 0
        and not tf.config.list_logical_devices("GPU")
    ):
        try:
            return tf.experimental.dlpack.from_dlpack(X.__dlpack__())
        except (BufferError, TypeError, ValueError):  # e.g. a read-only array: DLPack cannot mark it so
            pass
    return tf.constant(X)
