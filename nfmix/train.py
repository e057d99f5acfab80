"""Compiled training: whole chunks of epochs inside one ``tf.function``, restarts side by side.

A Python loop calls :meth:`Trainer.run_epochs` for a chunk of epochs at a time. Inside, a ``tf.while_loop``
walks the epochs and their shuffled minibatches carrying the parameters and Adam's moments as loop tensors;
the variables are read once at the start of the chunk and written once at its end. Restarts are independent
(Adam is elementwise and each restart's loss touches only its own slice), and a per-restart ``active`` mask
freezes a restart that diverged while the others train on.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict

import numpy as np

from nfmix._tf import tf
from nfmix.flows import MixtureParameters


class Trainer:
    """Maximum likelihood (``responsibilities=None``) or EM M-step epochs (fixed responsibilities) with Adam.

    Adam uses Keras' defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7); it is written out here so that its
    moments can be reset for one re-seeded component and masked for a frozen restart. The Trainer owns the
    optimiser state; the compiled loop it runs is shared by every model of the same architecture (see
    :class:`CompiledLoop`), so only the first fit of a configuration in a process pays for tracing and XLA.
    """

    def __init__(self, params: MixtureParameters, learning_rate: float, batch_size: int, jit_compile: bool = True,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        self.params = params
        self.learning_rate = learning_rate
        self.loop = CompiledLoop.for_params(params, int(batch_size), jit_compile, beta_1, beta_2, epsilon)
        self.m = [tf.Variable(tf.zeros_like(params.weights[i]), trainable=False) for i in self.loop.trainable]
        self.v = [tf.Variable(tf.zeros_like(params.weights[i]), trainable=False) for i in self.loop.trainable]
        self.step = tf.Variable(0.0, trainable=False, name="adam_step")
        self.active = tf.Variable(tf.ones([params.shape[0]]), trainable=False, name="active_restarts")

    def run_epochs(self, X, n_epochs: int, seed: int, responsibilities=None) -> np.ndarray:
        """Train ``n_epochs`` epochs; returns the mean loss of each epoch and restart, ``[n_epochs, R]``."""
        # The loss buffer has a static size, rounded up to a power of two, so XLA compiles once for every chunk
        # length up to it rather than once per length.
        capacity = 1 << max(int(n_epochs) - 1, 0).bit_length()
        args = (self.params.weights, self.m, self.v, self.step, self.active, tf.constant(self.learning_rate, tf.float32),
                X, tf.constant(n_epochs), tf.constant([seed, 0], tf.int32))
        with self.loop.serving(self.params):
            if responsibilities is None:
                losses = self.loop.mle(*args, capacity=capacity)
            else:
                losses = self.loop.em(*args, tf.convert_to_tensor(responsibilities, tf.float32), capacity=capacity)
        return losses.numpy()[:n_epochs]

    def reset_moments(self, index) -> None:
        """Zero Adam's moments for one (restart, component): used when a component is re-seeded."""
        for m, v in zip(self.m, self.v):
            m[index].assign(tf.zeros_like(m[index]))
            v[index].assign(tf.zeros_like(v[index]))


class SharedCompiled:
    """Compiled functions shared by every model of one architecture, a few architectures at a time.

    The functions take the variables as arguments, which tf.function traces by shape, not identity, so one
    trace (and one XLA compile) serves every model with the same shapes. The calling model is lent to the
    object only for the duration of a call (:meth:`serving`), for its structure; the cache never keeps a
    model, and so never keeps a model's variables, alive.
    """

    cache_size = 4
    _params: MixtureParameters | None = None  # the calling model's parameters, set only during a call

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._cache = OrderedDict()

    @classmethod
    def get(cls, key: tuple, *args):
        if key not in cls._cache:
            cls._cache[key] = cls(*args)
            while len(cls._cache) > cls.cache_size:
                cls._cache.popitem(last=False)
        cls._cache.move_to_end(key)
        return cls._cache[key]

    @contextlib.contextmanager
    def serving(self, params: MixtureParameters):
        self._params = params
        try:
            yield
        finally:
            self._params = None


class CompiledDensity(SharedCompiled):
    """``log pi_k + log p_k(x)`` (``[n, R, K]``) as one compiled function per architecture."""

    cache_size = 8  # a fit uses two: all restarts, then the kept one

    def __init__(self):
        self.function = tf.function(self._component_log_prob, reduce_retracing=True)

    def _component_log_prob(self, weights, x):
        with self._params.bound([w.read_value() for w in weights]):
            return self._params.component_log_prob(x)

    @classmethod
    def evaluate(cls, params: MixtureParameters, X, batch_size: int = 4096) -> np.ndarray:
        density = cls.get(params.config)
        with density.serving(params):
            return batched(functools.partial(density.function, params.weights), X, batch_size)


class CompiledLoop(SharedCompiled):
    """Chunks of Adam epochs as one compiled function per architecture and optimiser setting.

    The variables (parameters, Adam's moments, the active mask) are arguments; reading and writing them inside
    the compiled function, not around it, keeps no extra copy of them. A :class:`Trainer` gets its loop with
    :meth:`for_params` and calls it within :meth:`serving`.
    """

    @classmethod
    def for_params(cls, params, batch_size, jit_compile, beta_1, beta_2, epsilon) -> "CompiledLoop":
        key = (params.config, batch_size, jit_compile, beta_1, beta_2, epsilon)
        return cls.get(key, params, batch_size, jit_compile, beta_1, beta_2, epsilon)

    def __init__(self, params, batch_size, jit_compile, beta_1, beta_2, epsilon):
        self.n_restarts = params.shape[0]
        self.batch_size = batch_size
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.trainable = [i for i, v in enumerate(params.weights) if v.trainable]
        self.shapes = [params.weights[i].shape for i in self.trainable]
        self.mle = tf.function(self._loop_mle, jit_compile=jit_compile)
        self.em = tf.function(self._loop_em, jit_compile=jit_compile)

    def _loop_mle(self, weights, m, v, step, active, learning_rate, X, n_epochs, seed, capacity):
        return self._loop(weights, m, v, step, active, learning_rate, X, None, n_epochs, seed, capacity)

    def _loop_em(self, weights, m, v, step, active, learning_rate, X, n_epochs, seed, responsibilities, capacity):
        return self._loop(weights, m, v, step, active, learning_rate, X, responsibilities, n_epochs, seed, capacity)

    def _batches(self, n, seed, epoch):
        """Index and weight of each minibatch slot; the last batch wraps around with weight 0 (static shapes)."""
        if self.batch_size >= n:  # full batch: the order is irrelevant
            return 1, tf.range(n)[None], tf.ones([1, n])
        size = self.batch_size
        n_batches = -(-n // size)
        order = tf.argsort(tf.random.stateless_uniform([n], seed=seed + tf.stack([0, epoch])))
        slots = tf.range(n_batches * size)
        index = tf.reshape(tf.gather(order, slots % n), [n_batches, size])
        weight = tf.reshape(tf.cast(slots < n, tf.float32), [n_batches, size])
        return n_batches, index, weight

    # Parameters travel through the loop packed restart-major into one [R, P] matrix, so Adam is a handful of
    # fused ops instead of a dozen per variable, and a restart's mask is one [R, 1] column.
    def _pack(self, tensors):
        return tf.concat([tf.reshape(t, [self.n_restarts, -1]) for t in tensors], axis=1)

    def _unpack(self, matrix):
        parts = tf.split(matrix, [int(np.prod(shape[1:])) for shape in self.shapes], axis=1)
        return [tf.reshape(part, shape) for part, shape in zip(parts, self.shapes)]

    def _loop(self, weights, m_vars, v_vars, step_var, active_var, learning_rate, X, responsibilities, n_epochs,
              seed, capacity):
        n = X.shape[0]
        fixed = [w.read_value() for w in weights]
        active = active_var.read_value()
        state = (self._pack([fixed[i] for i in self.trainable]), self._pack([m.read_value() for m in m_vars]),
                 self._pack([v.read_value() for v in v_vars]), step_var.read_value())
        losses = tf.TensorArray(tf.float32, size=capacity, element_shape=[self.n_restarts])
        for epoch in tf.range(n_epochs):
            n_batches, index, weight = self._batches(n, seed, epoch)
            total = tf.zeros([self.n_restarts])
            for b in tf.range(n_batches):
                state, summed = self._step(state, fixed, active, learning_rate, X, responsibilities, index[b],
                                           weight[b])
                total += summed
            losses = losses.write(epoch, total / n)
        values, m, v, step = state
        for i, value in zip(self.trainable, self._unpack(values)):
            weights[i].assign(value)
        for variables, packed in ((m_vars, m), (v_vars, v)):
            for var, value in zip(variables, self._unpack(packed)):
                var.assign(value)
        step_var.assign(step)
        return losses.stack()

    def _step(self, state, fixed, active, learning_rate, X, responsibilities, index, weight):
        """One Adam step on one minibatch; returns the new state and each restart's summed loss ``[R]``."""
        values, m, v, step = state
        xb = tf.gather(X, index)
        with tf.GradientTape() as tape:
            tape.watch(values)
            all_values = list(fixed)
            for i, value in zip(self.trainable, self._unpack(values)):
                all_values[i] = value
            with self._params.bound(all_values):
                if responsibilities is None:  # maximum likelihood: -sum_n log p(x_n)
                    per_point = -self._params.log_prob(xb)  # [B, R]
                else:  # M-step: -sum_n sum_k r_nk log p_k(x_n); the weights are set in closed form
                    rb = tf.gather(responsibilities, index)
                    per_point = -tf.reduce_sum(rb * self._params.flow_log_prob(xb), -1)
            summed = tf.reduce_sum(weight[:, None] * per_point, 0)
            loss = tf.reduce_sum(tf.where(active > 0, summed, 0.0)) / tf.reduce_sum(weight)
        grad = tape.gradient(loss, values, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        mask = active[:, None]
        grad = tf.where(mask > 0, grad, 0.0)
        step = step + 1.0
        correction = tf.sqrt(1.0 - self.beta_2**step) / (1.0 - self.beta_1**step)
        m = self.beta_1 * m + (1.0 - self.beta_1) * grad
        v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        values = values - mask * learning_rate * correction * m / (tf.sqrt(v) + self.epsilon)
        return (values, m, v, step), summed


def batched(compiled_fn, X, batch_size: int = 4096) -> np.ndarray:
    """Apply a compiled ``x [B, D] -> [B, ...]`` function to every row, batch by batch, and stack the results."""
    X = np.asarray(X, np.float32)
    parts = [compiled_fn(tf.constant(X[i : i + batch_size])).numpy() for i in range(0, len(X), batch_size)]
    return np.concatenate(parts)
