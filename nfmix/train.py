"""Compiled training: whole chunks of epochs inside one ``tf.function``, restarts side by side (the Python driver
that calls it is :mod:`nfmix.fitting`; the compiled density for scoring is :mod:`nfmix.inference`).

A Python loop (:mod:`nfmix.fitting`) calls :meth:`Trainer.run_epochs` for a chunk of epochs at a time. Inside, a
``tf.while_loop`` walks the epochs and their shuffled minibatches carrying the parameters and Adam's moments as
loop tensors; the variables are read once at the start of the chunk and written once at its end. Restarts are
independent (Adam is elementwise and each restart's loss touches only its own slice), and a per-restart
``active`` mask freezes a restart that diverged while the others train on.

Compiled functions take every parameter as an argument and are shared by every model with the same
:class:`~nfmix.flows.MixtureSpec`, so only the first fit of a configuration in a process pays for tracing.
"""

from __future__ import annotations

import threading

import numpy as np

from nfmix._tf import tf
from nfmix.flows import FlowMixture, MixtureSpec
from nfmix.inference import SharedCompiled

LOSS_CAPACITY = 128  # epochs per compiled call: the loss buffer needs a static size for XLA


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

    def __init__(self, spec: MixtureSpec, values, learning_rate: float, batch_size: int, jit_compile: bool = True,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
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
        self.best = None  # each restart's best weights on held-out data, once early stopping asks for them

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
        likelihood the two are the same number.
        """
        if responsibilities is not None:
            responsibilities = tf.convert_to_tensor(responsibilities, tf.float32)
        parts = []
        # The compiled loop's loss buffer holds LOSS_CAPACITY epochs, so longer runs take several calls. Each call
        # is told how many epochs came before it, so the minibatch order is that of one long call.
        for done in range(0, max(int(n_epochs), 1), LOSS_CAPACITY):
            count = min(LOSS_CAPACITY, int(n_epochs) - done)
            losses = self.loop(self.packed, self.fixed, self.m, self.v, self.step, self.active,
                               tf.constant(self.learning_rate, tf.float32), X, tf.constant(count),
                               tf.constant([seed, done], tf.int32), responsibilities)
            parts.append(losses.numpy()[:, :count])
        return np.concatenate(parts, axis=1)

    def logits(self) -> np.ndarray:
        """The mixture logits ``[R, K]``: the first packed column (logits are always trained, and come first)."""
        return self.packed[:, :, MixtureSpec.LOGITS].numpy()

    def set_logits(self, logits) -> None:
        self.packed[:, :, MixtureSpec.LOGITS].assign(np.asarray(logits, np.float32))

    def restart_values(self, restart: int) -> list[np.ndarray]:
        """One restart's parameters, as arrays in ``spec.names()`` order (no copy of the other restarts)."""
        return [np.asarray(t[restart]) for t in self.tensors()]

    def finite_restarts(self) -> np.ndarray:
        """Whether each restart's trainable weights are all finite, ``[R]`` (checked without copying them out)."""
        return tf.reduce_all(tf.math.is_finite(self.packed), axis=[1, 2]).numpy()

    def take_snapshot(self, restarts: np.ndarray) -> None:
        """Remember the current weights of the restarts flagged ``[R]`` as their last good ones."""
        self.snapshot.keep(restarts)

    def restore(self, restarts: np.ndarray) -> None:
        """Put the restarts flagged ``[R]`` back to their last good weights."""
        self.snapshot.put_back(restarts)

    def remember_best(self, restarts: np.ndarray) -> None:
        """Remember the current weights of the restarts flagged ``[R]`` as their best on held-out data."""
        if self.best is None:
            self.best = Checkpoint(self)
        self.best.keep(restarts)

    def restore_best(self, restarts: np.ndarray) -> None:
        """Put the restarts flagged ``[R]`` back to their best weights on held-out data."""
        self.best.put_back(restarts)

    def reset_component(self, restart: int, component: int) -> None:
        """Fresh Adam moments and step count for one re-seeded (restart, component)."""
        for var in (self.m, self.v):
            var[restart, component].assign(tf.zeros_like(var[restart, component]))
        self.step[restart, component].assign(0.0)

    def freeze(self, restarts) -> None:
        mask = self.active.numpy()
        mask[list(restarts)] = 0.0
        self.active.assign(mask)


class Checkpoint:
    """A copy of a Trainer's parameters, trained and fixed, kept or put back restart by restart.

    The fixed ones belong in it too: a re-seed moves a component's base (its location, a GMM base's whitening)
    without training it, and weights put back must be those of one moment, not networks of one and bases of
    another.
    """

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer
        self.packed = tf.Variable(trainer.packed, trainable=False)
        self.fixed = [tf.Variable(var, trainable=False) for var in trainer.fixed]

    @staticmethod
    def _select(restarts: np.ndarray, chosen, other):
        mask = np.reshape(np.asarray(restarts, bool), [-1] + [1] * (len(chosen.shape) - 1))
        return tf.where(mask, chosen, other)

    def keep(self, restarts: np.ndarray) -> None:
        self.packed.assign(self._select(restarts, self.trainer.packed, self.packed))
        for copy, var in zip(self.fixed, self.trainer.fixed):
            copy.assign(self._select(restarts, var, copy))

    def put_back(self, restarts: np.ndarray) -> None:
        self.trainer.packed.assign(self._select(restarts, self.packed, self.trainer.packed))
        for copy, var in zip(self.fixed, self.trainer.fixed):
            var.assign(self._select(restarts, copy, var))


class CompiledLoop(SharedCompiled):
    """Chunks of Adam epochs as one compiled function per :class:`MixtureSpec` and optimiser setting.

    The variables (packed parameters, fixed parameters, Adam's moments and step counts, the active mask) are
    arguments; reading and writing them inside the compiled function, not around it, keeps no extra copy.
    """

    def __init__(self, spec, batch_size, jit_compile, beta_1, beta_2, epsilon):
        self.spec = spec
        self.packing = Packing(spec)
        self.batch_size = batch_size
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        # No autograph: the loops are written as tf.while_loop, and converting the code took most of the tracing
        # time of a first fit (about 4 of 5 s in a fresh process).
        self.mle = tf.function(self._loop_mle, jit_compile=jit_compile, autograph=False)
        self.em = tf.function(self._loop_em, jit_compile=jit_compile, autograph=False)
        self._traced = set()
        self._lock = threading.Lock()

    def __call__(self, packed, fixed, m, v, step, active, learning_rate, X, n_epochs, seed, responsibilities=None):
        """Run ``n_epochs`` (at most :data:`LOSS_CAPACITY`) epochs; returns the losses ``[2, LOSS_CAPACITY, R]``."""
        full_batch = self.batch_size >= X.shape[0]  # full batch: the order is irrelevant, so no shuffling
        function = self.mle if responsibilities is None else self.em
        with self._lock:
            if (function, full_batch) not in self._traced:
                # Trace once for any number of rows: later calls with a concrete X match this trace, so a new data
                # size costs an XLA compile for that shape but no retracing.
                R, K = self.spec.batch_shape
                rows = tf.TensorSpec([None, self.spec.n_features], tf.float32)
                extra = () if responsibilities is None else (tf.TensorSpec([None, R, K], tf.float32),)
                function.get_concrete_function(packed, fixed, m, v, step, active, tf.TensorSpec([], tf.float32),
                                               rows, tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int32),
                                               *extra, full_batch=full_batch)
                self._traced.add((function, full_batch))
        extra = () if responsibilities is None else (responsibilities,)
        return function(packed, fixed, m, v, step, active, learning_rate, X, n_epochs, seed, *extra,
                        full_batch=full_batch)

    def _loop_mle(self, packed, fixed, m, v, step, active, learning_rate, X, n_epochs, seed, full_batch):
        return self._loop(packed, fixed, m, v, step, active, learning_rate, X, None, n_epochs, seed, full_batch)

    def _loop_em(self, packed, fixed, m, v, step, active, learning_rate, X, n_epochs, seed, responsibilities,
                 full_batch):
        return self._loop(packed, fixed, m, v, step, active, learning_rate, X, responsibilities, n_epochs, seed,
                          full_batch)

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

    def _loop(self, packed_var, fixed_vars, m_var, v_var, step_var, active_var, learning_rate, X, responsibilities,
              n_epochs, seed, full_batch):
        n = tf.shape(X)[0]  # a tensor: one trace serves every number of rows
        R = self.spec.n_restarts
        fixed = [var.read_value() for var in fixed_vars]
        active = active_var.read_value()
        state = (packed_var.read_value(), m_var.read_value(), v_var.read_value(), step_var.read_value())
        losses = tf.TensorArray(tf.float32, size=LOSS_CAPACITY, element_shape=[2, R])

        def epoch_body(epoch, state, losses):
            n_batches, index, weight = self._batches(n, seed, epoch, full_batch)

            def batch_body(b, state, total):
                state, summed = self._step(state, fixed, active, learning_rate, X, responsibilities, index[b],
                                           weight[b])
                return b + 1, state, total + summed

            _, state, total = tf.while_loop(lambda b, state, total: b < n_batches, batch_body,
                                            (tf.constant(0), state, tf.zeros([2, R])))
            return epoch + 1, state, losses.write(epoch, total / tf.cast(n, tf.float32))

        _, state, losses = tf.while_loop(lambda epoch, state, losses: epoch < n_epochs, epoch_body,
                                         (tf.constant(0), state, losses))
        for var, value in zip((packed_var, m_var, v_var, step_var), state):
            var.assign(value)
        return tf.transpose(losses.stack(), [1, 0, 2])

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


def data_tensor(X: np.ndarray):
    """``X`` for the compiled loop: the array's own memory where TensorFlow can use it, else a copy.

    On the CPU, TensorFlow uses a float32 C-contiguous array that starts on a 64-byte boundary in place (DLPack),
    so a fit holds one copy of the data, not two (the image loaders return such arrays). With a GPU the data
    is copied to the device once, as before.
    """
    if (isinstance(X, np.ndarray) and X.dtype == np.float32 and X.flags.c_contiguous and X.ctypes.data % 64 == 0
            and not tf.config.list_logical_devices("GPU")):
        try:
            return tf.experimental.dlpack.from_dlpack(X.__dlpack__())
        except (BufferError, TypeError, ValueError):  # e.g. a read-only array: DLPack cannot mark it so
            pass
    return tf.constant(X)
