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
# # 05 · Classic baselines on one dataset: random, k-means, Gaussian mixture
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/nfmix/nfmix/blob/v0.2.0/notebooks/05_baselines.ipynb)
#
# This notebook is the template for the per-dataset baseline notebooks in `notebooks/baselines/`.
# `python -m nfmix.notebooks generate` writes one per published dataset, with the dataset as the default of its
# own `parameters` cell, so edit this file, never the copies.
#
# Each notebook runs the three baselines the paper published (scikit-learn, `n_init=10`), or the ones a
# practitioner picks for curved clusters (spectral clustering on a 10-nearest-neighbour graph, Ward agglomerative
# clustering, HDBSCAN), prints one metric table, and draws where each class lands. Spectral and Ward need memory
# that grows with the square of the rows: on the 70,000 images, run them on a `subsample` (10,000 fits in 24 GiB).

# %%
try:  # Colab installs nfmix; a local checkout has it from `pip install -e .`
    import nfmix  # noqa: F401 (importing it is the check)
except ModuleNotFoundError:
    # %pip install -q "nfmix @ git+https://github.com/nfmix/nfmix@v0.2.0"
    import nfmix  # noqa: F401 (importing it is the check)

# %% tags=["parameters"]
# digits, mnist, mnist5, fmnist, cifar10; or a 2D set: two_banana, smile, moons,
# circles, pinwheel
dataset: str = "digits"  # @param {type:"string"}
# principal components (the paper: 100); 0 keeps the raw features
pca: int = 0  # @param {type:"integer"}
# "published": random, k-means, GMM; "graph": spectral, Ward, HDBSCAN; "all": all six
methods: str = "published"  # @param ["published", "graph", "all"]
# k-means / GMM / spectral restarts (the published: 10)
n_init: int = 10  # @param {type:"integer"}
# GMM restarts if different (full covariances on 784+ dims are slow); 0: n_init
gmm_n_init: int = 0  # @param {type:"integer"}
seed: int = 0  # @param {type:"integer"}
subsample: int = 0  # @param {type:"integer"} rows to keep (0: all)
data_dir: str = ""  # a folder holding the image files, if not in the usual places
# figures and metrics.json: "auto" is outputs/<notebook>/<dataset>, "" writes nothing
out_dir: str = "auto"

# %%
import matplotlib.pyplot as plt
import pandas as pd
from nfmix import load_dataset, plots
from nfmix.baselines import BASELINES, GRAPH_BASELINES, run_baselines
from nfmix.data import variant_name
from nfmix.metrics import contingency
from nfmix.records import record_metrics, run_folder

variant = variant_name(dataset, pca)
run_dir = run_folder(out_dir, "05_baselines", variant)
X, y = load_dataset(
    dataset,
    pca=pca or None,
    data_dir=data_dir or None,
    subsample=subsample or None,
    seed=seed,
)
print(
    f"{variant}: {X.shape[0]} rows, {X.shape[1]} features, "
    f"{len(set(y.tolist()))} classes"
)

# %%
chosen = {
    "published": BASELINES,
    "graph": GRAPH_BASELINES,
    "all": BASELINES + GRAPH_BASELINES,
}[methods]
restarts = {"kmeans": n_init, "gmm": gmm_n_init or n_init, "spectral": n_init}
labels, rows = run_baselines(
    X, y, seed=seed, n_init=restarts, methods=chosen, dataset=dataset, pca=pca
)
table = pd.DataFrame(rows).set_index("method")
table[["purity", "ari", "nmi", "accuracy", "seconds"]].round(3)

# %% [markdown]
# ## Where each class goes
# Rows are true labels and columns are clusters. Each row is normalised to sum to 1.
# **What to see:** random labels spread every row evenly. A baseline that separates a class puts most of
# that row in one cell. HDBSCAN picks its own number of clusters; its noise points (label -1), if any, are its first column.

# %%
fig, axes = plt.subplots(1, len(labels), figsize=(5.5 * len(labels), 4.5))
for ax, (method, predicted) in zip(axes, labels.items()):
    plots.plot_contingency(
        contingency(y, predicted), ax=ax, title=f"{variant}: {method}"
    )
fig.tight_layout()
plots.savefig(fig, "baselines_contingency.png", run_dir)
plt.show()

# %%
record_metrics(rows, run_dir, notebook="05_baselines", subsample=subsample)
