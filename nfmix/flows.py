"""A batch of masked autoregressive flows, held as stacked masked weight tensors, as one TFP distribution.

The original trained K separate ``tfb.AutoregressiveNetwork``s in a Python loop. Here the K components of
each of R restarts share one network whose weights carry leading ``(R, K)`` batch dimensions, so a single
compiled step evaluates and trains all ``R * K`` flows. The density itself is still TFP's:
``MixtureSameFamily(Categorical, TransformedDistribution(MultivariateNormalDiag, MaskedAutoregressiveFlow))``
with batch shape ``[R]`` and components of batch shape ``[R, K]``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from nfmix._tf import tf, tfb, tfd

SMALL_EVENT = 8  # up to this many dimensions, the first layer is a sum of broadcast products
ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu, "elu": tf.nn.elu, "gelu": tf.nn.gelu, "sigmoid": tf.sigmoid}


def made_masks(event_size: int, hidden_units: list[int], params: int = 2) -> list[np.ndarray]:
    """MADE masks exactly as ``tfb.AutoregressiveNetwork`` builds them (left-to-right order, 'equal' degrees).

    The last mask has ``event_size * params`` columns ordered dimension-major, so the output reshapes to
    ``[..., event_size, params]`` and unstacks into shift and log-scale, as TFP's own network does.
    """
    degrees = [np.arange(1, event_size + 1)]
    for units in hidden_units:
        min_degree = min(degrees[-1].min(), event_size - 1)
        boundaries = np.ceil(np.arange(1, units + 1) * (event_size - 1) / float(units + 1)).astype(np.int32)
        degrees.append(np.maximum(min_degree, boundaries))
    masks = [inputs[:, None] <= outputs for inputs, outputs in zip(degrees[:-1], degrees[1:])]
    masks.append(degrees[-1][:, None] < degrees[0])
    masks[-1] = np.repeat(masks[-1], params, axis=1)
    return [m.astype(np.float32) for m in masks]


class StackedMADE(tf.Module):
    """``R x K`` MADE networks in stacked weights; called on ``y [..., R|1, K|1, D]`` it returns ``[..., R, K, D, 2]``.

    All ``R*K`` networks run as one batched matmul per layer.
    """

    def __init__(self, batch_shape, event_size, hidden_units, activation="tanh", name=None):
        super().__init__(name=name)
        self.batch_shape = tuple(int(b) for b in batch_shape)
        self.event_size = int(event_size)
        self.hidden_units = [int(h) for h in hidden_units]
        self.activation = ACTIVATIONS[activation] if isinstance(activation, str) else activation
        self.masks = [tf.constant(m) for m in made_masks(self.event_size, self.hidden_units)]
        sizes = [self.event_size] + self.hidden_units + [2 * self.event_size]
        self.kernels = [
            tf.Variable(tf.zeros(self.batch_shape + (n_in, n_out)), name=f"kernel_{i}")
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]
        self.biases = [tf.Variable(tf.zeros(self.batch_shape + (n,)), name=f"bias_{i}") for i, n in enumerate(sizes[1:])]
        self._memo = None
        self._bound = None  # tensors standing in for kernels + biases while a training chunk is traced

    def initial_values(self, rng: np.random.RandomState) -> list[np.ndarray]:
        """Glorot-uniform kernels (masked) and zero biases, as ``tfb.AutoregressiveNetwork`` initialises them."""
        values = []
        for kernel, mask in zip(self.kernels, self.masks):
            n_in, n_out = kernel.shape[-2:]
            limit = np.sqrt(6.0 / (n_in + n_out))
            values.append(rng.uniform(-limit, limit, size=kernel.shape).astype(np.float32) * mask.numpy())
        return values + [np.zeros(b.shape, np.float32) for b in self.biases]

    @property
    def weights(self) -> list[tf.Variable]:
        return self.kernels + self.biases

    @contextlib.contextmanager
    def memoized(self):
        """Within this block, repeated calls on the same tensor reuse the first result.

        TFP's MAF runs the network once for the inverse and again for its log-det-Jacobian on the very same
        input; the memo halves the cost of every log-density. It lives only inside the block, because outside
        it the weights may change between two calls on the same tensor.
        """
        self._memo = {}
        try:
            yield
        finally:
            self._memo = None

    def __call__(self, y):
        if self._memo is not None and id(y) in self._memo and self._memo[id(y)][0] is y:
            return self._memo[id(y)][1]
        out = self._forward(y)
        if self._memo is not None:
            self._memo[id(y)] = (y, out)
        return out

    def _forward(self, y):
        # Work flow-major with the points last, [C, units, M]: each layer is one batched matmul whose long
        # axis (the points) is contiguous, and there is one transpose, at the end.
        batch_rank = len(self.batch_shape)
        n_flows = int(np.prod(self.batch_shape))
        weights = self._bound if self._bound is not None else self.weights
        n_layers = len(self.kernels)
        kernels = [tf.reshape(k * m, [n_flows] + k.shape[-2:]) for k, m in zip(weights[:n_layers], self.masks)]
        biases = [tf.reshape(b, [n_flows, -1, 1]) for b in weights[n_layers:]]
        lead_shape = tf.shape(y)[: -(batch_rank + 1)]
        h = self._first_layer(y, kernels[0], lead_shape) + biases[0]
        for kernel, bias in zip(kernels[1:], biases[1:]):
            h = tf.matmul(kernel, self.activation(h), transpose_a=True) + bias
        out_shape = tf.concat([lead_shape, self.batch_shape, [self.event_size, 2]], 0)
        return tf.reshape(tf.transpose(h, [2, 0, 1]), out_shape)

    def _first_layer(self, y, kernel, lead_shape):
        """``kernel [C, D, H]`` applied to ``y``: ``[C, H, M]``.

        The first block's input is the data itself, the same for every flow, so it is never copied C times.
        With few dimensions (2D sets) a sum of D broadcast products beats a matmul whose inner size is D.
        """
        D = self.event_size
        shared = all(size == 1 for size in y.shape[-(len(self.batch_shape) + 1) : -1])
        if shared:
            x_t = tf.transpose(tf.reshape(y, [-1, D]))  # [D, M]
        else:
            x = tf.broadcast_to(y, tf.concat([lead_shape, self.batch_shape, [D]], 0))
            x_t = tf.transpose(tf.reshape(x, [-1, kernel.shape[0], D]), [1, 2, 0])  # [C, D, M]
        kernel_t = tf.transpose(kernel, [0, 2, 1])  # [C, H, D]
        if D <= SMALL_EVENT:
            rows = [x_t[d][None, None] if shared else x_t[:, d][:, None] for d in range(D)]
            return tf.add_n([kernel_t[:, :, d, None] * row for d, row in enumerate(rows)])
        if shared:
            n_flows, units = kernel_t.shape[:2]
            return tf.reshape(tf.matmul(tf.reshape(kernel_t, [-1, D]), x_t), [n_flows, units, -1])
        return tf.matmul(kernel_t, x_t)


class MixtureParameters(tf.Module):
    """Every variable of ``R`` restarts of a K-component mixture of MAFs; leading dims ``(R, K)`` everywhere."""

    def __init__(self, n_restarts, n_components, n_features, hidden_units, n_blocks=1, activation="tanh",
                 trainable_base=False):
        super().__init__(name="mixture")
        shape = (int(n_restarts), int(n_components))
        self.shape = shape
        self.n_features = int(n_features)
        # everything that fixes the computation (not the values): models with equal configs share compiled code
        self.config = (shape, self.n_features, tuple(int(h) for h in hidden_units), int(n_blocks), activation,
                       bool(trainable_base))
        self.logits = tf.Variable(tf.ones(shape), name="logits")
        self.loc = tf.Variable(tf.zeros(shape + (n_features,)), trainable=trainable_base, name="loc")
        self.scale = tf.Variable(tf.ones(shape + (n_features,)), trainable=False, name="scale")
        self.mades = [StackedMADE(shape, n_features, hidden_units, activation, name=f"made_{b}") for b in range(n_blocks)]
        self._bound = None

    @property
    def weights(self) -> list[tf.Variable]:
        """All variables in a fixed order: logits, loc, scale, then each block's kernels and biases."""
        return [self.logits, self.loc, self.scale] + [w for made in self.mades for w in made.weights]

    @contextlib.contextmanager
    def memoized(self):
        with contextlib.ExitStack() as stack:
            for made in self.mades:
                stack.enter_context(made.memoized())
            yield

    @contextlib.contextmanager
    def bound(self, values):
        """Within this block the distribution reads ``values`` (tensors in :attr:`weights` order), not the variables.

        Training carries the parameters as loop tensors through a compiled chunk of steps, which is far cheaper
        than writing variables at every step, and writes them back once at the end.
        """
        self._bound = list(values)
        offset = 3
        for made in self.mades:
            made._bound = self._bound[offset : offset + len(made.weights)]
            offset += len(made.weights)
        try:
            yield
        finally:
            self._bound = None
            for made in self.mades:
                made._bound = None

    def _current(self):
        return self._bound if self._bound is not None else self.weights

    def flow(self) -> tfb.Bijector:
        """Base -> data: MAF blocks with the order of the dimensions reversed between consecutive blocks."""
        reverse = tfb.Permute(permutation=list(range(self.n_features - 1, -1, -1)))
        steps = []
        for index, made in enumerate(self.mades):
            if index:
                steps.append(reverse)
            steps.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))
        return tfb.Chain(steps[::-1])  # Chain applies its last bijector first

    def components(self) -> tfd.Distribution:
        _, loc, scale = self._current()[:3]
        base = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
        return tfd.TransformedDistribution(base, self.flow())

    def mixture(self) -> tfd.MixtureSameFamily:
        return tfd.MixtureSameFamily(tfd.Categorical(logits=self._current()[0]), self.components())

    def log_prob(self, x):
        """Mixture log-density of ``x [N, D]`` under each restart: ``[N, R]``."""
        with self.memoized():
            return self.mixture().log_prob(x[:, None, :])

    def flow_log_prob(self, x):
        """Each component's log-density ``log p_k(x)`` for ``x [N, D]``: ``[N, R, K]``."""
        with self.memoized():
            return self.components().log_prob(x[:, None, None, :])

    def component_log_prob(self, x):
        """``log pi_k + log p_k(x)``: ``[N, R, K]``; its log-sum-exp over K is :meth:`log_prob`."""
        return tf.math.log_softmax(self._current()[0], axis=-1) + self.flow_log_prob(x)
