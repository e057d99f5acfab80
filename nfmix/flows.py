"""R restarts of a K-component mixture of masked autoregressive flows, as TFP distributions.

The original trained K separate ``tfb.AutoregressiveNetwork``s in a Python loop. Here the K components of
each of R restarts share one network whose weights carry leading ``(R, K)`` batch dimensions, so a single
compiled step evaluates and trains all ``R * K`` flows. The density itself is still TFP's:
``MixtureSameFamily(Categorical, TransformedDistribution(MultivariateNormalDiag, MaskedAutoregressiveFlow))``
with batch shape ``[R]`` and components of batch shape ``[R, K]``.

Nothing here holds state: a :class:`FlowMixture` is built around a list of parameter tensors (constants while
predicting, loop tensors while training, variables for autodiff in the tutorial) and is used, then dropped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nfmix._tf import tf, tfb, tfd

SMALL_EVENT = 8  # up to this many dimensions, the first layer is a sum of broadcast products
ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu, "elu": tf.nn.elu, "gelu": tf.nn.gelu, "sigmoid": tf.sigmoid}


def made_masks(event_size: int, hidden_units, params: int = 2) -> list[np.ndarray]:
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


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """What fixes the computation of a mixture of MAFs, not its values; equal specs share compiled code.

    Parameters travel as a list in :meth:`names` order, each with leading dimensions ``(R, K)``: logits ``[R, K]``,
    the two base slots, then each block's kernels ``[R, K, in, out]`` and biases ``[R, K, out]``. The base slots
    are ``loc`` and ``scale`` ``[R, K, D]`` for ``base="diag"`` (a diagonal Gaussian base), and ``loc [R, K, D]``
    and ``whitening [R, K, D, D]`` for ``base="gmm"``: a lower-triangular ``W`` with ``W (x - loc)`` the
    component's whitened coordinates, where its flow works on a standard normal base.
    """

    n_restarts: int
    n_components: int
    n_features: int
    hidden_units: tuple
    n_blocks: int = 1
    activation: str = "tanh"
    trainable_base: bool = False
    base: str = "diag"

    LOGITS = 0  # slot of the mixture logits: always first, always trained
    NETWORKS = 3  # slot where the first block's network weights start

    @property
    def batch_shape(self) -> tuple[int, int]:
        return (self.n_restarts, self.n_components)

    @property
    def layer_sizes(self) -> list[int]:
        return [self.n_features, *self.hidden_units, 2 * self.n_features]

    @property
    def n_layers(self) -> int:
        return len(self.hidden_units) + 1

    @property
    def base_names(self) -> list[str]:
        return ["loc", "whitening"] if self.base == "gmm" else ["loc", "scale"]

    def slot(self, name: str) -> int:
        """Position of the parameter ``name`` in :meth:`names` order."""
        return self.names().index(name)

    def names(self) -> list[str]:
        names = ["logits", *self.base_names]
        for b in range(self.n_blocks):
            names += [f"made_{b}/kernel_{i}" for i in range(self.n_layers)]
            names += [f"made_{b}/bias_{i}" for i in range(self.n_layers)]
        return names

    def shapes(self) -> list[tuple]:
        R, K, D = self.n_restarts, self.n_components, self.n_features
        sizes = self.layer_sizes
        block = [(R, K, n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])] + [(R, K, n) for n in sizes[1:]]
        spread = (R, K, D, D) if self.base == "gmm" else (R, K, D)
        return [(R, K), (R, K, D), spread] + block * self.n_blocks

    def trainable(self) -> list[bool]:
        """Logits and networks train; the base only with ``trainable_base`` (a diagonal base's scales never)."""
        spread = self.trainable_base and self.base == "gmm"
        return [True, self.trainable_base, spread] + [True] * (2 * self.n_layers * self.n_blocks)

    def fields(self) -> dict:
        """The spec's fields but ``n_restarts``, by name: what a saved model records of it."""
        fields = dataclasses.asdict(self)
        fields.pop("n_restarts")
        fields["hidden_units"] = list(self.hidden_units)
        return fields

    def masks(self) -> list[np.ndarray]:
        return made_masks(self.n_features, self.hidden_units)

    def with_restarts(self, n_restarts: int) -> MixtureSpec:
        return dataclasses.replace(self, n_restarts=int(n_restarts))


class MADE:
    """One block's ``R x K`` autoregressive networks with fixed weights, all run as one batched matmul per layer.

    Called on ``y [..., R|1, K|1, D]`` it returns shift and log-scale ``[..., R, K, D, 2]``. The weights never
    change during the object's life, so results are memoised: TFP's MAF calls the network once for the inverse and
    again for its log-det-Jacobian on the very same tensor, and the memo halves the cost of every log-density.
    """

    def __init__(self, spec: MixtureSpec, kernels, biases):
        self.spec = spec
        self.activation = ACTIVATIONS[spec.activation]
        # (R, K) is read off the weights, not the spec, so one compiled density serves any number of restarts.
        static = tf.TensorShape(kernels[0].shape)[:2]
        self.batch_shape = static.as_list() if static.is_fully_defined() else tf.shape(kernels[0])[:2]
        self.kernels = [tf.reshape(k * m, [-1, m.shape[0], m.shape[1]]) for k, m in zip(kernels, spec.masks())]
        self.biases = [tf.reshape(b, [-1, b.shape[-1], 1]) for b in biases]
        self._memo = {}

    def __call__(self, y):
        if id(y) in self._memo and self._memo[id(y)][0] is y:
            return self._memo[id(y)][1]
        out = self._forward(y)
        self._memo[id(y)] = (y, out)  # keeping y alive keeps its id from being reused
        return out

    def _forward(self, y):
        # Flow-major with the points last, [C, units, M]: each layer is one batched matmul whose long axis (the
        # points) is contiguous, and there is one transpose, at the end.
        lead_shape = tf.shape(y)[:-3]
        h = self._first_layer(y, lead_shape) + self.biases[0]
        for kernel, bias in zip(self.kernels[1:], self.biases[1:]):
            h = tf.matmul(kernel, self.activation(h), transpose_a=True) + bias
        out_shape = tf.concat([lead_shape, self.batch_shape, [self.spec.n_features, 2]], 0)
        return tf.reshape(tf.transpose(h, [2, 0, 1]), out_shape)

    def _first_layer(self, y, lead_shape):
        """The first kernel ``[C, D, H]`` applied to ``y``: ``[C, H, M]``.

        The first block's input is the data itself, the same for every flow, so it is never copied C times.
        With few dimensions (2D sets) a sum of D broadcast products beats a matmul whose inner size is D.
        """
        D = self.spec.n_features
        kernel = self.kernels[0]
        shared = all(size == 1 for size in y.shape[-3:-1])
        if shared:
            x_t = tf.transpose(tf.reshape(y, [-1, D]))  # [D, M]
        else:
            x = tf.broadcast_to(y, tf.concat([lead_shape, self.batch_shape, [D]], 0))
            x_t = tf.transpose(tf.reshape(x, [-1, _dim(kernel, 0), D]), [1, 2, 0])  # [C, D, M]
        kernel_t = tf.transpose(kernel, [0, 2, 1])  # [C, H, D]
        if D <= SMALL_EVENT:
            rows = [x_t[d][None, None] if shared else x_t[:, d][:, None] for d in range(D)]
            return tf.add_n([kernel_t[:, :, d, None] * row for d, row in enumerate(rows)])
        if shared:
            return tf.reshape(tf.matmul(tf.reshape(kernel_t, [-1, D]), x_t), [_dim(kernel_t, 0), kernel_t.shape[1], -1])
        return tf.matmul(kernel_t, x_t)


def _dim(tensor, axis: int):
    """One dimension of ``tensor``: static where it is known, else a scalar tensor."""
    return tensor.shape[axis] if tensor.shape[axis] is not None else tf.shape(tensor)[axis]


class FlowMixture:
    """The mixture of MAFs that ``values`` (tensors, arrays or variables in ``spec.names()`` order) describe.

    ``data_units``, a bijector from the rescaled features the flows were trained on to the data's own units (see
    :mod:`nfmix.scaling`), is the outermost step of every flow when given, so densities and samples are the data's.
    """

    def __init__(self, spec: MixtureSpec, values, data_units: tfb.Bijector | None = None):
        if len(values) != len(spec.names()):
            raise ValueError(f"expected {len(spec.names())} parameter arrays for {spec}; got {len(values)}")
        self.spec = spec
        self.values = list(values)
        self.data_units = data_units

    @property
    def logits(self):
        return self.values[MixtureSpec.LOGITS]

    @property
    def loc(self):
        return self.values[self.spec.slot("loc")]

    def network(self, block: int) -> MADE:
        per_block = 2 * self.spec.n_layers
        start = MixtureSpec.NETWORKS + block * per_block
        weights = self.values[start : start + per_block]
        return MADE(self.spec, weights[: self.spec.n_layers], weights[self.spec.n_layers :])

    def flow(self) -> tfb.Bijector:
        """Base -> data: MAF blocks with the order of the dimensions reversed between consecutive blocks, then
        ``data_units``."""
        reverse = tfb.Permute(permutation=list(range(self.spec.n_features - 1, -1, -1)))
        steps = []  # in the order they apply
        for block in range(self.spec.n_blocks):
            if block:
                steps.append(reverse)
            steps.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=self.network(block)))
        if self.spec.base == "gmm":  # whitened -> data coordinates: x = loc + W^-1 y (inverting costs a matmul)
            whitening = self.values[self.spec.slot("whitening")]
            steps += [tfb.Invert(tfb.ScaleMatvecTriL(scale_tril=whitening)), tfb.Shift(self.loc)]
        if self.data_units is not None:
            steps.append(self.data_units)
        return tfb.Chain(steps[::-1])  # Chain applies its last bijector first

    def components(self) -> tfd.Distribution:
        """The K flows of every restart: batch shape ``[R, K]``."""
        if self.spec.base == "gmm":
            base = tfd.MultivariateNormalDiag(loc=tf.zeros_like(self.loc), scale_diag=tf.ones_like(self.loc))
        else:
            base = tfd.MultivariateNormalDiag(loc=self.loc, scale_diag=self.values[self.spec.slot("scale")])
        return tfd.TransformedDistribution(base, self.flow())

    def mixture(self) -> tfd.MixtureSameFamily:
        """The mixture of every restart: batch shape ``[R]``."""
        return tfd.MixtureSameFamily(tfd.Categorical(logits=self.logits), self.components())

    def flow_log_prob(self, x):
        """Each component's log-density ``log p_k(x)`` for ``x [N, D]``: ``[N, R, K]``."""
        log_prob = self.components().log_prob(x[:, None, None, :])
        log_prob.set_shape(x.shape[:1].concatenate(self.logits.shape))  # TFP loses it when N is not static
        return log_prob

    def weighted_log_prob(self, x):
        """``log pi_k + log p_k(x)`` for ``x [N, D]``: ``[N, R, K]``; its log-sum-exp over K is :meth:`log_prob`."""
        return tf.math.log_softmax(self.logits, axis=-1) + self.flow_log_prob(x)

    def log_prob(self, x):
        """Mixture log-density of ``x [N, D]`` under each restart: ``[N, R]``."""
        return tf.reduce_logsumexp(self.weighted_log_prob(x), axis=-1)
