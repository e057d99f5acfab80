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
# # 02 · Clustering 2D shapes with a mixture of flows
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/nfmix/nfmix/blob/v0.2.0/notebooks/02_toy_2d.ipynb)
#
# The paper's 2D experiments: fit a mixture of K masked autoregressive flows (K = the number of true labels),
# watch its density form during training, and compare its clusters with k-means and a Gaussian mixture.
# Flows can bend a component around a banana or a moon; a Gaussian cannot. (Two concentric rings are another
# matter: see the circles results in `04_results`.)

# %%
try:  # Colab installs nfmix; a local checkout has it from `pip install -e .`
    import nfmix  # noqa: F401 (importing it is the check)
except ModuleNotFoundError:
    # %pip install -q "nfmix @ git+https://github.com/nfmix/nfmix@v0.2.0"
    import nfmix  # noqa: F401 (importing it is the check)

# %% tags=["parameters"]
dataset = "two_banana"  # @param ["two_banana", "smile", "moons", "circles", "pinwheel"]
# the paper's set-up or nfmix's tuned one
preset: str = "nfmix"  # @param ["nfmix", "paper"]
epochs: int = 0  # @param {type:"integer"} 0 keeps the preset's (2000)
# restarts trained side by side; 0 keeps the preset's
n_init: int = 0  # @param {type:"integer"}
algorithm: str = ""  # @param ["", "mle", "em_soft", "em_hard"] "": the preset's
learning_rate: float = 0.0  # @param {type:"number"} 0 keeps the preset's
seed: int = 0  # @param {type:"integer"}
# epochs between density snapshots (and GIF frames)
snapshot_every: int = 100  # @param {type:"integer"}
# figures and metrics.json: "auto" is outputs/<notebook>/<dataset>, "" writes nothing
out_dir: str = "auto"
smoke: bool = False  # @param {type:"boolean"} a quick run for CI

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, display
from nfmix import MAFMixture, load_dataset, plots, presets
from nfmix.baselines import BASELINES, GRAPH_BASELINES, run_baselines
from nfmix.metrics import clustering_scores
from nfmix.records import record_metrics, run_folder

settings = presets.settings(
    preset,
    "2d",
    epochs=epochs or None,
    n_init=n_init or None,
    algorithm=algorithm or None,
    learning_rate=learning_rate or None,
    random_state=seed,
    verbose=1,
)  # 0 / "": the preset's
if smoke:
    settings.update(epochs=60, n_init=min(settings["n_init"], 2))
snapshot_every = min(snapshot_every, max(settings["epochs"] // 3, 1))
run_dir = run_folder(out_dir, "02_toy_2d", dataset)
X, y = load_dataset(dataset)
n_clusters = len(np.unique(y))
print(f"{dataset}: {X.shape[0]} points, {n_clusters} clusters; settings: {settings}")

# %% [markdown]
# ## The data
# All sets are rescaled to the unit square, as in the paper. Colours are the true labels, which the model
# never sees.

# %%
ax = plots.plot_points(
    X, y, title=f"{dataset}: the data and its true labels", label_name="label"
)
plt.show()

# %% [markdown]
# ## Training
# All restarts train side by side in one compiled loop. Every `snapshot_every` epochs a callback draws the
# current density of the best restart so far.

# %%
recorder = plots.DensityRecorder(X, every=snapshot_every)
model = MAFMixture(n_clusters, **settings).fit(
    X, callback=recorder, callback_every=snapshot_every
)
labels = model.predict(X)
print(
    f"kept restart {model.best_restart_} of {model.n_init}; "
    f"mean log-likelihood {model.score(X):.4f}; {model.history_['seconds']:.1f} s; "
    f"re-seeded components: {len(model.history_['reseeds'])}"
)

# %% [markdown]
# ## The density during training
# These are snapshots of $p(\mathbf x)$ on a grid over the data (`inferno`, on a log scale over three decades so
# that thin arms show beside dense cores), from the first check to the final epoch.
# **What to see:** the first frame, after `snapshot_every` epochs, still shows the starts (with the nfmix preset,
# Gaussians at k-means centroids; with the paper's, blobs at random base locations). Over the epochs each flow bends its
# Gaussian onto one shape of the data.

# %%
fig = recorder.plot_strip(title=f"{dataset}: mixture density during training")
plots.savefig(fig, "density_snapshots.png", run_dir)
plt.show()

# %% [markdown]
# The same snapshots as an animated GIF, written next to the other outputs, as on the original project page.

# %%
# with out_dir="" nothing is written: the GIF goes to a temporary folder, for display
import tempfile

with tempfile.TemporaryDirectory() as scratch:
    gif_path = recorder.save_gif(
        Path(run_dir or scratch) / "density.gif", title=dataset
    )
    print(
        f"{len(recorder.frames)} frames, {gif_path.stat().st_size / 1e3:.0f} kB"
        + (f": {gif_path}" if run_dir else "")
    )
    display(Image(filename=str(gif_path)))

# %% [markdown]
# ## Loss, clusters and decision regions
# **What to see:** the loss (the mixture's mean negative log-likelihood, for every algorithm) drops fast and then
# slowly keeps improving. The faint lines are the other restarts: the kept one has the best final likelihood, not necessarily the best
# clustering. Each point's cluster is its most probable component. The decision regions show which component
# claims each part of the plane, on $[-0.25, 1.25]^2$ as in the paper.

# %%
fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
plots.plot_loss(
    model.history_["loss"],
    ax=axes[0],
    per_restart=model.history_["loss_per_restart"],
    title=f"{dataset}: training loss",
)
plots.plot_density(model.score_samples, X, ax=axes[1], title="final density")
plots.plot_points(X, labels, ax=axes[2], title="clusters (most probable component)")
plots.plot_decision_regions(
    model.predict,
    X,
    labels,
    ax=axes[3],
    title="decision regions",
    n_clusters=n_clusters,
)
fig.tight_layout()
plots.savefig(fig, "final.png", run_dir)
plt.show()

# %% [markdown]
# ## Against k-means, a Gaussian mixture and graph-based clustering
# Same data, same number of clusters: the published baselines (k-means and a GMM, scikit-learn, `n_init=10`),
# and what a practitioner picks for curved clusters, with scikit-learn's usual settings: spectral clustering on
# a 10-nearest-neighbour graph, Ward agglomerative clustering, and HDBSCAN (which takes no K: its noise points
# count as one more cluster).

# %%
setup = presets.setup_name(
    preset, "2d", algorithm
)  # an algorithm override is its own set-up
maf_row = clustering_scores(y, labels, method=f"maf_mixture ({setup})", seed=seed)
maf_row.update(
    loss=-model.score(X),
    seconds=model.history_["seconds"],
    n_reseeds=len(model.history_["reseeds"]),
)
# the baselines' estimators: the GMM's density is drawn below without fitting it again
fitted = {}
baseline_labels, baseline_rows = run_baselines(
    X, y, seed=seed, methods=BASELINES + GRAPH_BASELINES, models=fitted
)
table = pd.DataFrame([maf_row] + baseline_rows).set_index("method")
table[["purity", "ari", "nmi", "accuracy", "seconds"]].round(3)

# %% [markdown]
# **What the Gaussians miss.** On the left is the GMM's density, and on the right the mixture of flows'.
# **What to see:** the GMM has to cover a curved shape with an ellipse, so its mass spills into the gaps
# between the shapes. The flows follow each curve.

# %%
gmm = fitted["gmm"]
fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
plots.plot_density(
    gmm.score_samples,
    X,
    ax=axes[0],
    title=f"GMM density (ARI {table.loc['gmm', 'ari']:.2f})",
)
plots.plot_density(
    model.score_samples,
    X,
    ax=axes[1],
    title=f"mixture of flows density (ARI {maf_row['ari']:.2f})",
)
fig.tight_layout()
plots.savefig(fig, "gmm_vs_flows.png", run_dir)
plt.show()

# %%
record_metrics(
    [maf_row] + baseline_rows,
    run_dir,
    dataset=dataset,
    preset=preset,
    notebook="02_toy_2d",
    epochs=settings["epochs"],
    n_init=settings["n_init"],
    algorithm=settings["algorithm"],
    learning_rate=settings["learning_rate"],
)
