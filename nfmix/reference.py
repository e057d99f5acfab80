"""The original formulation, kept as a yardstick: a ``tfd.Mixture`` of K separate TFP MAFs, each with its own
``tfb.AutoregressiveNetwork``, trained with tf-keras' Adam one component at a time.

Tests use :func:`mixture_like` to check nfmix's batched flows against it; the benchmarks time
:func:`original_mixture` trained eagerly (as the paper did) and inside ``tf.function``.
"""

from __future__ import annotations

import numpy as np

from nfmix._tf import tf, tfb, tfd


def _flow(n_features, hidden_units, weights_per_block=None, activation="tanh"):
    steps = []
    for index in range(len(weights_per_block) if weights_per_block else 1):
        network = tfb.AutoregressiveNetwork(
            params=2, hidden_units=list(hidden_units), activation=activation, event_shape=[n_features]
        )
        network(tf.zeros([1, n_features]))
        if weights_per_block:
            network.set_weights(weights_per_block[index])
        if index:
            steps.append(tfb.Permute(list(range(n_features - 1, -1, -1))))
        steps.append(tfb.MaskedAutoregressiveFlow(network))
    return tfb.Chain(steps[::-1])


def original_mixture(n_components, n_features, hidden_units=(10,), seed=0, base_scale=0.1) -> tfd.Mixture:
    """The paper's model: base locations uniform in [0, 1)^D, scale 0.1, logits 1 (trainable)."""
    rng = np.random.RandomState(seed)
    tf.random.set_seed(seed)
    components = [
        tfd.TransformedDistribution(
            tfd.MultivariateNormalDiag(
                loc=rng.rand(n_features).astype(np.float32), scale_diag=[base_scale] * n_features
            ),
            _flow(n_features, hidden_units),
        )
        for _ in range(n_components)
    ]
    return tfd.Mixture(tfd.Categorical(logits=tf.Variable(tf.ones([n_components]))), components)


def mixture_like(model) -> tfd.Mixture:
    """A ``tfd.Mixture`` of separate TFP MAFs holding the same weights as a fitted ``MAFMixture``."""
    spec, params = model._fitted_spec, model.params_
    if spec.base != "diag":
        raise ValueError(f'mixture_like rebuilds the paper\'s diagonal-base flows; this model has base="{spec.base}"')
    masks = spec.masks()
    components = []
    for k in range(model.n_components):
        blocks = []
        for b in range(spec.n_blocks):
            kernels = [params[f"made_{b}/kernel_{i}"][k] * masks[i] for i in range(spec.n_layers)]
            biases = [params[f"made_{b}/bias_{i}"][k] for i in range(spec.n_layers)]
            blocks.append([w for pair in zip(kernels, biases) for w in pair])
        base = tfd.MultivariateNormalDiag(params["loc"][k], params["scale"][k])
        flow = tfb.Chain(
            [model._scaling().bijector(), _flow(spec.n_features, spec.hidden_units, blocks, spec.activation)]
        )
        components.append(tfd.TransformedDistribution(base, flow))
    return tfd.Mixture(tfd.Categorical(logits=params["logits"]), components)


def train_step_fn(mixture: tfd.Mixture, learning_rate: float = 1e-3, compiled: bool = False):
    """One Adam step on a batch, as the original code took it (eagerly), or the same inside ``tf.function``."""
    import tf_keras

    optimizer = tf_keras.optimizers.Adam(learning_rate)
    variables = mixture.trainable_variables

    def step(batch):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(mixture.log_prob(batch))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return tf.function(step) if compiled else step
