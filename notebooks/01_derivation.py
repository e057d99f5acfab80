# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,jupytext,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Mixtures of masked autoregressive flows, derived and checked
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/nfmix/nfmix/blob/v0.2.0/notebooks/01_derivation.ipynb)
#
# This notebook goes from the change of variables to clustering with a mixture of flows. It covers the masked
# autoregressive flow (MAF), the mixture's log-likelihood and its gradient, and cluster assignment. Every
# numbered equation is followed by a short cell that checks it numerically with `nfmix`.

# %%
try:  # Colab installs nfmix; a local checkout has it from `pip install -e .`
    import nfmix  # noqa: F401 (importing it is the check)
except ModuleNotFoundError:
    # %pip install -q "nfmix @ git+https://github.com/nfmix/nfmix@v0.2.0"
    import nfmix  # noqa: F401 (importing it is the check)

# %% tags=["parameters"]
seed: int = 0  # @param {type:"integer"}
# epochs of the small model the checks use
train_epochs: int = 300  # @param {type:"integer"}
smoke: bool = False  # @param {type:"boolean"} a quicker run for CI

# %%
import matplotlib.pyplot as plt
import numpy as np
from nfmix import MAFMixture, load_dataset
from nfmix._tf import tf

epochs = 30 if smoke else train_epochs
X, y = load_dataset("moons")
model = MAFMixture(
    2,
    base="diag",  # the flows alone (the default, "auto", may keep a GMM instead)
    hidden_units=(16,),
    n_init=4,
    algorithm="mle",
    epochs=epochs,
    random_state=seed,
).fit(X)  # gradient ML
flow = (
    model.flow_mixture()
)  # the fitted parameters as TFP distributions: bases, mixture logits, networks

# %% [markdown]
# ## 1. Change of variables
#
# Let $\mathbf z \sim p_Z$ be a simple base density and $\mathbf x = f(\mathbf z)$ an invertible, differentiable
# map. The density of $\mathbf x$ is
#
# $$ p_X(\mathbf x) = p_Z\big(f^{-1}(\mathbf x)\big)\,\Big|\det \frac{\partial f^{-1}(\mathbf x)}{\partial \mathbf x}\Big| . \tag{1}$$
#
# In nfmix each component $k$ uses a diagonal Gaussian
# $p_Z = \mathcal N(\boldsymbol\mu_k, \operatorname{diag}\boldsymbol\sigma_k^2)$ and its own MAF $f_k$. Check (1) on
# component 0: the TFP log-density equals the base log-density at $f^{-1}(\mathbf x)$ plus the log-determinant that
# autodiff computes from the full Jacobian.

# %%
components = (
    flow.components()
)  # a TransformedDistribution with batch shape [restart=1, K]
bijector = components.bijector
x = tf.constant(X[:5])
x_batched = tf.tile(x[:, None, None, :], [1, 1, model.n_components, 1])  # [n, 1, K, D]

with tf.GradientTape(persistent=True) as tape:
    tape.watch(x_batched)
    z = bijector.inverse(x_batched)
jacobian = tf.reshape(tape.jacobian(z, x_batched), [5, 2, 2, 5, 2, 2])
log_det_autodiff = np.array(
    [
        [
            np.log(abs(np.linalg.det(jacobian[n, k, :, n, k, :].numpy())))
            for k in range(2)
        ]
        for n in range(5)
    ]
)
base = components.distribution
by_formula = base.log_prob(z)[:, 0, :].numpy() + log_det_autodiff
by_tfp = components.log_prob(x_batched)[:, 0, :].numpy()
print("max |(1) - TFP log p_k(x)| =", np.abs(by_formula - by_tfp).max())
assert np.allclose(by_formula, by_tfp, atol=1e-4)

# %% [markdown]
# ## 2. The masked autoregressive flow
#
# A MAF writes each coordinate as an affine function of a base coordinate. The shift and log-scale depend
# only on the coordinates *before* it:
#
# $$ x_i = z_i\, e^{\alpha_i(\mathbf x_{<i})} + \mu_i(\mathbf x_{<i}), \tag{2}$$
#
# $$ z_i = \big(x_i - \mu_i(\mathbf x_{<i})\big)\, e^{-\alpha_i(\mathbf x_{<i})}. \tag{3}$$
#
# One masked network (MADE) computes all $(\mu_i, \alpha_i)$ at once. Its weight masks cut every path from
# $x_j$ to output $i$ when $j \ge i$. Check: perturbing $x_2$ leaves the shift and log-scale of coordinate 1
# unchanged, and perturbing $x_1$ moves those of coordinate 2.

# %%
network = flow.network(0)
point = tf.constant([[0.3, 0.7]])[:, None, None, :]
moved_x2 = point + tf.constant([0.0, 0.5])
moved_x1 = point + tf.constant([0.5, 0.0])
outputs = [
    network(p).numpy()[0, 0, 0] for p in (point, moved_x2, moved_x1)
]  # [D, (shift, log-scale)]
print(
    "coordinate 1 after moving x2, change:", np.abs(outputs[1][0] - outputs[0][0]).max()
)
print(
    "coordinate 2 after moving x1, change:", np.abs(outputs[2][1] - outputs[0][1]).max()
)
assert np.allclose(outputs[1][0], outputs[0][0]) and not np.allclose(
    outputs[2][1], outputs[0][1]
)

# %% [markdown]
# Because $z_i$ in (3) needs only $\mathbf x$, which we already have, **density evaluation is one pass** of
# the network. Sampling runs (2) from $\mathbf z$ and needs $x_{<i}$ before $x_i$, so it takes **$D$ passes**.
# The Jacobian $\partial \mathbf z / \partial \mathbf x$ is lower triangular with diagonal $e^{-\alpha_i}$,
# so
#
# $$ \log\Big|\det \frac{\partial f^{-1}}{\partial \mathbf x}\Big| = -\sum_{i=1}^{D} \alpha_i(\mathbf x_{<i}). \tag{4}$$
#
# Check (4) against the autodiff log-determinant above. Then check that the forward map inverts (3).

# %%
alphas = network(x_batched)[..., 1]  # [n, 1, K, D]
log_det_formula = -tf.reduce_sum(alphas, -1)[:, 0, :].numpy()
print(
    "max |(4) - autodiff log|det J|| =",
    np.abs(log_det_formula - log_det_autodiff).max(),
)
assert np.allclose(log_det_formula, log_det_autodiff, atol=1e-4)
upper = np.array(
    [jacobian[n, k, 0, n, k, 1].numpy() for n in range(5) for k in range(2)]
)
print("entries above the diagonal of dz/dx:", np.abs(upper).max())
round_trip = bijector.forward(bijector.inverse(x_batched))
print("max |f(f^-1(x)) - x| =", np.abs(round_trip.numpy() - x_batched.numpy()).max())
assert np.abs(upper).max() == 0 and np.allclose(round_trip, x_batched, atol=1e-5)

# %% [markdown]
# ## 3. The mixture and its log-likelihood
#
# With weights $\pi_k = \operatorname{softmax}(\boldsymbol\ell)_k$ (trainable logits $\boldsymbol\ell$), the
# mixture density is
#
# $$ p(\mathbf x) = \sum_{k=1}^{K} \pi_k\, p_k(\mathbf x). \tag{5}$$
#
# It is a density, so it integrates to 1. The figure shows it on a grid that covers almost all of its mass,
# and the cell sums it.

# %%
grid_1d = np.linspace(-1.0, 2.0, 400)
grid = np.stack(np.meshgrid(grid_1d, grid_1d), -1).reshape(-1, 2).astype(np.float32)
density = np.exp(model.score_samples(grid))
mass = density.sum() * (grid_1d[1] - grid_1d[0]) ** 2
print(f"integral of p over the grid: {mass:.4f}")
assert abs(mass - 1) < 0.03
fig, ax = plt.subplots(figsize=(5, 4.2))
mesh = ax.pcolormesh(
    grid_1d, grid_1d, density.reshape(400, 400), cmap="inferno", shading="auto"
)
fig.colorbar(mesh, ax=ax, label="density")
ax.set(
    title="mixture density $p(\\mathbf{x})$ on the moons",
    xlabel="$x_1$",
    ylabel="$x_2$",
)
plt.show()

# %% [markdown]
# **What to see:** the mass sits on the two moons, each bent as a Gaussian cannot bend, and almost none lies
# outside the unit square.
#
# Over a data set $\{\mathbf x_n\}$ the mean log-likelihood is computed with the log-sum-exp, which never
# leaves log space:
#
# $$ \mathcal L = \frac1N \sum_n \log \sum_k \exp\big(\log\pi_k + \log p_k(\mathbf x_n)\big). \tag{6}$$
#
# Check (6) against an independent computation: `nfmix.reference.mixture_like` rebuilds the fitted model as
# K separate TFP flows (each with its own `tfb.AutoregressiveNetwork`, as the original code had them) in a
# `tfd.Mixture`. Evaluating (6) from those components' log-densities must give `model.score_samples`. Far from
# the data, (6) stays finite, where the naive sum of exponentials underflows to $\log 0$.

# %%
from nfmix.reference import mixture_like

separate = mixture_like(model)  # K separate TFP MAFs holding the fitted weights
points = np.vstack([X, [[40.0, -40.0]]]).astype(np.float32)
log_joint = np.stack(
    [
        np.log(w)
        + c.log_prob(points).numpy()  # log pi_k + log p_k(x), component by component
        for w, c in zip(model.weights_, separate.components)
    ],
    axis=1,
)
by_lse = np.logaddexp.reduce(log_joint, axis=1)
with np.errstate(divide="ignore"):
    naive = np.log(np.exp(log_joint).sum(axis=1))
print(
    "max |(6) from separate flows - score_samples|:",
    np.abs(by_lse - model.score_samples(points)).max(),
    "| far point:",
    by_lse[-1],
    "naive:",
    naive[-1],
)
assert np.allclose(by_lse, model.score_samples(points), atol=1e-3)
assert np.isfinite(by_lse[-1]) and np.isinf(naive[-1])

# %% [markdown]
# ## 4. The gradient: responsibilities appear
#
# Differentiating (6) for one point with respect to a parameter $\theta$ of the flows (component $k$'s network
# or base) gives a responsibility-weighted sum of the components' gradients:
#
# $$ \nabla_\theta \log p(\mathbf x) = \sum_k r_k(\mathbf x)\, \nabla_\theta \log p_k(\mathbf x),\qquad
#    r_k(\mathbf x) = \frac{\pi_k p_k(\mathbf x)}{\sum_j \pi_j p_j(\mathbf x)} . \tag{7}$$
#
# Check (7) on the first network kernel: autodiff of (6), against autodiff of
# $\frac1N\sum_n\sum_k r_k(\mathbf x_n)\log p_k(\mathbf x_n)$ with the responsibilities held fixed.

# %%
trainable = model.flow_mixture(
    trainable=True
)  # the same parameters as variables, to differentiate
kernel = trainable.values[3]  # block 0, layer 0: [1, K, D, H]
with tf.GradientTape(persistent=True) as tape:
    mean_log_likelihood = tf.reduce_mean(trainable.log_prob(tf.constant(X)))
    flow_log_prob = trainable.flow_log_prob(tf.constant(X))  # log p_k(x_n): [N, 1, K]
    fixed_r = tf.stop_gradient(
        tf.nn.softmax(tf.math.log_softmax(trainable.logits) + flow_log_prob, axis=-1)
    )
    weighted_sum = tf.reduce_mean(tf.reduce_sum(fixed_r * flow_log_prob, axis=-1))
by_autodiff, by_formula = (
    tape.gradient(mean_log_likelihood, kernel),
    tape.gradient(weighted_sum, kernel),
)
print(
    "max |autodiff of (6) - (7)| over the kernel:",
    tf.reduce_max(tf.abs(by_autodiff - by_formula)).numpy(),
)
assert np.allclose(by_autodiff, by_formula, atol=1e-5)

# %% [markdown]
# The logits enter through $\log\pi_k$ instead: (7) holds with $\log p_k$ replaced by $\log(\pi_k p_k)$, and
# since $\partial\log\pi_j/\partial\ell_k = [j = k] - \pi_k$ the gradient of (6) is
#
# $$ \frac{\partial \mathcal L}{\partial \ell_k} = \frac1N\sum_n r_k(\mathbf x_n) - \pi_k . \tag{8}$$
#
# Check (8) with autodiff.

# %%
autodiff = tape.gradient(mean_log_likelihood, trainable.logits).numpy()[0]
formula = model.predict_proba(X).mean(axis=0) - model.weights_
print("autodiff:", autodiff, " (8):", formula)
assert np.allclose(autodiff, formula, atol=1e-5)

# %% [markdown]
# ## 5. Clusters, and the link to EM
#
# A point's cluster is its most probable component:
#
# $$ \hat k(\mathbf x) = \arg\max_k r_k(\mathbf x) = \arg\max_k \big(\log \pi_k + \log p_k(\mathbf x)\big). \tag{9}$$
#
# Setting (8) to zero gives the weights in closed form, $\pi_k = \frac1N\sum_n r_k(\mathbf x_n)$. EM builds on this:
# its E-step computes the responsibilities $r_{nk}$ with the parameters fixed, and its M-step maximises
# $\sum_n\sum_k r_{nk}\big(\log\pi_k + \log p_k(\mathbf x_n)\big)$. For the weights that maximum is the closed
# form above; for the flows there is none, so `algorithm="em_soft"` takes a few gradient epochs on
# $\sum_n\sum_k r_{nk}\log p_k(\mathbf x_n)$ instead, a partial M-step (generalised EM), which still never lowers
# (6) when the steps are small. `algorithm="em_hard"` replaces $r$ by its arg-max: it maximises the
# *classification* likelihood $\sum_n \log\big(\pi_{\hat k_n} p_{\hat k_n}(\mathbf x_n)\big)$ over the
# assignments and the parameters, not (6). `history_["loss"]` always reports (6) (as a mean negative
# log-likelihood), and the M-step objective is kept apart as `history_["em_objective"]`.
#
# Check: responsibilities sum to one and `predict` is their arg-max. The figure colours each point by (9).

# %%
proba = model.predict_proba(X)
assert (
    np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    and (model.predict(X) == proba.argmax(axis=1)).all()
)
fig, ax = plt.subplots(figsize=(5, 4.2))
points = ax.scatter(X[:, 0], X[:, 1], c=proba[:, 0], cmap="coolwarm", s=6)
fig.colorbar(points, ax=ax, label="$r_0(\\mathbf{x})$")
ax.set(title="responsibility of component 0", xlabel="$x_1$", ylabel="$x_2$")
plt.show()

# %% [markdown]
# **What to see:** the responsibility is near 0 or 1 almost everywhere. It changes only where the two moons'
# densities cross, and that is where the cluster boundary (9) runs.
