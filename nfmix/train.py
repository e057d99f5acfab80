"""Compiled training: whole chunks of epochs inside one ``tf.function``, restarts side by side.

A Python loop calls :meth:`Trainer.run_epochs` for a chunk of epochs at a time. Inside, a ``tf.while_loop``
walks the epochs and their shuffled minibatches carrying the parameters and Adam's moments as loop tensors;
the variables are read once at the start of the chunk and written once at its end. Restarts are independent
(Adam is elementwise and each restart's loss touches only its own slice), and a per-restart ``active`` mask
freezes a restart that diverged while the others train on.
"""

from __future__ import annotations

import numpy as np

from nfmix._tf import tf
from nfmix.flows import MixtureParameters


class Trainer:
    """Maximum likelihood (``responsibilities=None``) or EM M-step epochs (fixed responsibilities) with Adam.

    Adam uses Keras' defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7); it is written out here so that its
    moments can be reset for one re-seeded component and masked for a frozen restart.
    """

    def __init__(self, params: MixtureParameters, learning_rate: float, batch_size: int, jit_compile: bool = True,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        self.params = params
        self.batch_size = int(batch_size)
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.trainable = [i for i, v in enumerate(params.weights) if v.trainable]
        self.m = [tf.Variable(tf.zeros_like(params.weights[i]), trainable=False) for i in self.trainable]
        self.v = [tf.Variable(tf.zeros_like(params.weights[i]), trainable=False) for i in self.trainable]
        self.step = tf.Variable(0.0, trainable=False, name="adam_step")
        self.active = tf.Variable(tf.ones([params.shape[0]]), trainable=False, name="active_restarts")
        self._mle = tf.function(self._loop_mle, jit_compile=jit_compile)
        self._em = tf.function(self._loop_em, jit_compile=jit_compile)

    def run_epochs(self, X, n_epochs: int, seed: int, responsibilities=None) -> np.ndarray:
        """Train ``n_epochs`` epochs; returns the mean loss of each epoch and restart, ``[n_epochs, R]``."""
        seed = tf.constant([seed, 0], tf.int32)
        if responsibilities is None:
            return self._mle(X, tf.constant(n_epochs), seed).numpy()
        return self._em(X, tf.convert_to_tensor(responsibilities, tf.float32), tf.constant(n_epochs), seed).numpy()

    def reset_moments(self, index) -> None:
        """Zero Adam's moments for one (restart, component): used when a component is re-seeded."""
        for m, v in zip(self.m, self.v):
            m[index].assign(tf.zeros_like(m[index]))
            v[index].assign(tf.zeros_like(v[index]))

    def _loop_mle(self, X, n_epochs, seed):
        return self._loop(X, None, n_epochs, seed)

    def _loop_em(self, X, responsibilities, n_epochs, seed):
        return self._loop(X, responsibilities, n_epochs, seed)

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
        return tf.concat([tf.reshape(t, [self.params.shape[0], -1]) for t in tensors], axis=1)

    def _unpack(self, matrix):
        shapes = [self.params.weights[i].shape for i in self.trainable]
        parts = tf.split(matrix, [int(np.prod(shape[1:])) for shape in shapes], axis=1)
        return [tf.reshape(part, shape) for part, shape in zip(parts, shapes)]

    def _loop(self, X, responsibilities, n_epochs, seed):
        n = X.shape[0]
        fixed = [v.read_value() for v in self.params.weights]
        state = (self._pack([fixed[i] for i in self.trainable]), self._pack([m.read_value() for m in self.m]),
                 self._pack([v.read_value() for v in self.v]), self.step.read_value())
        losses = tf.TensorArray(tf.float32, size=n_epochs)
        for epoch in tf.range(n_epochs):
            n_batches, index, weight = self._batches(n, seed, epoch)
            total = tf.zeros([self.params.shape[0]])
            for b in tf.range(n_batches):
                state, summed = self._step(state, fixed, X, responsibilities, index[b], weight[b])
                total += summed
            losses = losses.write(epoch, total / n)
        values, m, v, step = state
        for i, value in zip(self.trainable, self._unpack(values)):
            self.params.weights[i].assign(value)
        for variables, packed in ((self.m, m), (self.v, v)):
            for var, value in zip(variables, self._unpack(packed)):
                var.assign(value)
        self.step.assign(step)
        return losses.stack()

    def _step(self, state, fixed, X, responsibilities, index, weight):
        """One Adam step on one minibatch; returns the new state and each restart's summed loss ``[R]``."""
        values, m, v, step = state
        xb = tf.gather(X, index)
        with tf.GradientTape() as tape:
            tape.watch(values)
            all_values = list(fixed)
            for i, value in zip(self.trainable, self._unpack(values)):
                all_values[i] = value
            with self.params.bound(all_values):
                if responsibilities is None:  # maximum likelihood: -sum_n log p(x_n)
                    per_point = -self.params.log_prob(xb)  # [B, R]
                else:  # M-step: -sum_n sum_k r_nk log p_k(x_n); the weights are set in closed form
                    rb = tf.gather(responsibilities, index)
                    per_point = -tf.reduce_sum(rb * self.params.flow_log_prob(xb), -1)
            summed = tf.reduce_sum(weight[:, None] * per_point, 0)
            loss = tf.reduce_sum(tf.where(self.active > 0, summed, 0.0)) / tf.reduce_sum(weight)
        grad = tape.gradient(loss, values, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        mask = self.active[:, None]
        grad = tf.where(mask > 0, grad, 0.0)
        step = step + 1.0
        correction = tf.sqrt(1.0 - self.beta_2**step) / (1.0 - self.beta_1**step)
        m = self.beta_1 * m + (1.0 - self.beta_1) * grad
        v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        values = values - mask * self.learning_rate * correction * m / (tf.sqrt(v) + self.epsilon)
        return (values, m, v, step), summed


def batched(compiled_fn, X, batch_size: int = 4096) -> np.ndarray:
    """Apply a compiled ``x [B, D] -> [B, ...]`` function to every row, batch by batch, and stack the results."""
    X = np.asarray(X, np.float32)
    parts = [compiled_fn(tf.constant(X[i : i + batch_size])).numpy() for i in range(0, len(X), batch_size)]
    return np.concatenate(parts)
