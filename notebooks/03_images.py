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
# # 03 · Clustering images with a mixture of flows
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/nfmix/nfmix/blob/v0.2.0/notebooks/03_images.ipynb)
#
# The paper's image experiments: one flow per class on raw pixels or on 100 principal components. We compare
# with k-means and a Gaussian mixture, look at where each class lands, and draw samples from each flow.
# A GPU runtime in Colab runs the full sets unchanged. On a CPU, start with `digits` or a `subsample`.

# %%
try:  # Colab installs nfmix; a local checkout has it from `pip install -e .`
    import nfmix  # noqa: F401 (importing it is the check)
except ModuleNotFoundError:
    # %pip install -q "nfmix @ git+https://github.com/nfmix/nfmix@v0.2.0"
    import nfmix  # noqa: F401 (importing it is the check)

# %% tags=["parameters"]
dataset: str = "digits"  # @param ["digits", "fmnist", "mnist", "mnist5", "cifar10"]
# principal components (the paper: 100); 0 keeps raw pixels
pca: int = 0  # @param {type:"integer"}
subsample: int = 0  # @param {type:"integer"} rows to keep (0: all)
# which rows (and the PCA's seed): fixed, so model seeds compare on the same data
subsample_seed: int = 0  # @param {type:"integer"}
preset: str = "nfmix"  # @param ["nfmix", "paper"]
epochs: int = 0  # @param {type:"integer"} 0 keeps the preset's (10)
n_init: int = 0  # @param {type:"integer"} 0 keeps the preset's
# width of the one hidden layer; 0 keeps the preset's (1024)
hidden_units: int = 0  # @param {type:"integer"}
n_blocks: int = 0  # @param {type:"integer"} MAF blocks per flow; 0 keeps the preset's
algorithm: str = ""  # @param ["", "mle", "em_soft", "em_hard"]
init: str = ""  # @param ["", "random", "kmeans"]
learning_rate: float = 0.0  # @param {type:"number"}
batch_size: int = 0  # @param {type:"integer"}
# k-means / GMM restarts (the published: 10); 0 skips them
baseline_n_init: int = 10  # @param {type:"integer"}
seed: int = 0  # @param {type:"integer"}
data_dir: str = ""  # a folder holding the image files, if not in the usual places
# figures and metrics.json: "auto" is outputs/<notebook>/<dataset>, "" writes nothing
out_dir: str = "auto"
smoke: bool = False  # @param {type:"boolean"} a quick run for CI

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from nfmix import MAFMixture, load_dataset, plots, presets
from nfmix.baselines import run_baselines
from nfmix.data import pca_project, variant_name
from nfmix.images import IMAGE_SHAPES
from nfmix.metrics import clustering_scores, contingency
from nfmix.records import record_metrics, run_folder

settings = presets.settings(
    preset,
    "images",
    epochs=epochs or None,
    n_init=n_init or None,  # 0 / "": the preset's
    algorithm=algorithm or None,
    init=init or None,
    n_blocks=n_blocks or None,
    learning_rate=learning_rate or None,
    batch_size=batch_size or None,
    hidden_units=(hidden_units,) if hidden_units else None,
    random_state=seed,
    verbose=1,
)
if smoke:
    settings.update(epochs=2, n_init=min(settings["n_init"], 2), hidden_units=(32,))
variant = variant_name(dataset, pca)
run_dir = run_folder(out_dir, "03_images", variant)
pixels, y = load_dataset(
    dataset, data_dir=data_dir or None, subsample=subsample or None, seed=subsample_seed
)
X, projection = pca_project(pixels, pca, seed=subsample_seed) if pca else (pixels, None)
n_clusters = len(np.unique(y))
print(
    f"{variant}: {X.shape[0]} images, {X.shape[1]} features, {n_clusters} classes; "
    f"settings: {settings}"
)

# %% [markdown]
# ## Fit
# One flow per class, all restarts side by side. The progress bar counts epochs.

# %%
model = MAFMixture(n_clusters, **settings).fit(X)
labels = model.predict(X)
print(
    f"kept restart {model.best_restart_}; "
    f"mean log-likelihood {model.score(X):.2f} nats; "
    f"{model.history_['seconds']:.1f} s; "
    f"re-seeded components: {len(model.history_['reseeds'])}"
)

# %% [markdown]
# ## Metrics beside the classic baselines

# %%
setup = presets.setup_name(
    preset, "images", algorithm
)  # an algorithm override is its own set-up
maf_row = clustering_scores(y, labels, method=f"maf_mixture ({setup})", seed=seed)
maf_row.update(
    loss=-model.score(X),
    seconds=model.history_["seconds"],
    n_reseeds=len(model.history_["reseeds"]),
)
rows = [maf_row]
if baseline_n_init:
    rows += run_baselines(X, y, seed=seed, n_init=1 if smoke else baseline_n_init)[1]
table = pd.DataFrame(rows).set_index("method")
table[["purity", "ari", "nmi", "accuracy", "seconds"]].round(3)

# %% [markdown]
# ## Where each class goes
# Rows are true classes and columns are clusters. Each row is normalised to sum to 1.
# **What to see:** a class that one cluster captures shows as one bright cell in its row. Classes that share
# a cluster (on Fashion-MNIST often shirt, pullover and coat) light up the same column.

# %%
fig, ax = plt.subplots(figsize=(6, 5))
plots.plot_contingency(
    contingency(y, labels),
    ax=ax,
    title=f"{variant}: mixture of flows, label -> cluster",
)
plots.savefig(fig, "contingency.png", run_dir)
plt.show()

# %% [markdown]
# ## Samples from each flow
# Each row holds draws from one component. Raw-pixel draws are shown as images. PCA draws are first mapped
# back to pixels with the inverse PCA. **What to see:** a component that has learned a class draws
# recognisable members of it. Noisy draws show how much density the flow spends between the data.

# %%
per_component = 8
# One pass of the flows draws per_component points from every component at once:
# [per_component, 1, K, D].
points = model.flow_mixture().components().sample(per_component, seed=[seed, 0]).numpy()
draws = (
    points[:, 0].transpose(1, 0, 2).reshape(-1, points.shape[-1])
)  # component-major rows
images = projection.inverse_transform(draws) if projection is not None else draws
fig, ax = plt.subplots(figsize=(per_component * 0.8, n_clusters * 0.8))
plots.plot_image_grid(
    images,
    IMAGE_SHAPES[dataset],
    ax=ax,
    n_cols=per_component,
    title=f"{variant}: {per_component} samples from each component",
)
plots.savefig(fig, "samples.png", run_dir)
plt.show()

# %%
record_metrics(
    rows,
    run_dir,
    dataset=dataset,
    pca=pca,
    subsample=subsample,
    subsample_seed=subsample_seed,
    preset=preset,
    notebook="03_images",
    epochs=settings["epochs"],
    n_init=settings["n_init"],
    algorithm=settings["algorithm"],
    init=settings["init"],
    hidden_units=list(settings["hidden_units"]),
)
