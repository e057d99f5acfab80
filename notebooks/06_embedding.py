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
# # 06 · Flows where they shine: clustering images in a UMAP embedding
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/nfmix/nfmix/blob/v0.2.0/notebooks/06_embedding.ipynb)
#
# On raw pixels a mixture of flows at best matches k-means. Its strength is curved, non-Gaussian clusters in a
# few dimensions, and a neighbourhood embedding gives images exactly that shape. N2D (McConville et al., ICPR 2020)
# clusters a UMAP embedding with a Gaussian mixture. Here the same embedding is clustered by k-means, a
# Gaussian mixture and a mixture of flows, so **the flows' contribution is the gap between them in one
# embedding**, and UMAP's is what k-means already reaches there.
#
# The steps are one scikit-learn `Pipeline`: PCA → UMAP → min-max scaling → clusterer
# (`nfmix.embedding.embedding_pipeline`). The fitted embedding is cached on disk, keyed by the data and every
# parameter, so a rerun or another clusterer does not pay for UMAP again.

# %%
try:  # Colab installs nfmix; a local checkout has it from `pip install -e .`
    import nfmix  # noqa: F401 (importing it is the check)
except ModuleNotFoundError:
    # %pip install -q "nfmix @ git+https://github.com/nfmix/nfmix@v0.2.0"
    import nfmix  # noqa: F401 (importing it is the check)
import importlib.util

if (
    importlib.util.find_spec("umap") is None
):  # the embedding's optional dependency (Colab ships it)
    # %pip install -q "umap-learn>=0.5.5"
    pass

# %% tags=["parameters"]
dataset: str = "digits"  # @param ["digits", "fmnist", "mnist", "mnist5", "cifar10"]
subsample: int = 0  # @param {type:"integer"} images to keep (0: all)
# principal components before UMAP; 0 feeds UMAP the raw pixels
pca: int = 50  # @param {type:"integer"}
embedding_dim: int = 10  # @param {type:"integer"} UMAP's n_components
n_neighbors: int = 20  # @param {type:"integer"} UMAP's neighbourhood size
# UMAP's minimum distance (0: tight clusters, as N2D)
min_dist: float = 0.0  # @param {type:"number"}
preset: str = "nfmix"  # @param ["nfmix", "paper"] the flows' set-up
epochs: int = 0  # @param {type:"integer"} 0 keeps the preset's (nfmix: 300)
# restarts of the flows, and of k-means and the GMM; 0 keeps the preset's
n_init: int = 0  # @param {type:"integer"}
algorithm: str = ""  # @param ["", "mle", "em_soft", "em_hard"] "": the preset's
# spectral and HDBSCAN run on at most this many images (0 skips them)
graph_rows: int = 20000  # @param {type:"integer"}
# seeds PCA, UMAP and every clusterer: one seed, one new embedding and model
seed: int = 0  # @param {type:"integer"}
data_dir: str = ""  # a folder holding the image files, if not in the usual places
# figures and metrics.json: "auto" is outputs/<notebook>/<dataset>, "" writes nothing
out_dir: str = "auto"
smoke: bool = False  # @param {type:"boolean"} a quick run for CI

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from nfmix import MAFMixture, load_dataset, plots, presets
from nfmix.baselines import run_baseline
from nfmix.embedding import embedding_pipeline
from nfmix.metrics import clustering_scores, contingency
from nfmix.records import record_metrics, run_folder
from sklearn.decomposition import PCA

settings = presets.settings(
    preset,
    "embedding",
    epochs=20 if smoke else epochs or None,
    n_init=2 if smoke else n_init or None,
    algorithm=algorithm or None,
    random_state=seed,
    verbose=1,
)  # 0 / "": the preset's
rows_kept = f"_{subsample}" if subsample else ""
variant = f"{dataset}{rows_kept}_umap{embedding_dim}_nn{n_neighbors}"
run_dir = run_folder(out_dir, "06_embedding", variant)
images, y = load_dataset(
    dataset, data_dir=data_dir or None, subsample=subsample or None, seed=0
)
n_clusters = len(np.unique(y))
embedding = embedding_pipeline(
    pca=pca or None,
    n_components=embedding_dim,
    n_neighbors=n_neighbors,
    min_dist=min_dist,
    random_state=seed,
)
started = time.perf_counter()
Z = embedding.fit_transform(
    images
)  # from the on-disk cache when this data and these parameters ran before
embedding_seconds = time.perf_counter() - started
print(
    f"{dataset}: {len(Z)} images, {images.shape[1]} pixels -> "
    f"a {embedding_dim}-D embedding in "
    f"{embedding_seconds:.1f} s; {n_clusters} classes; flows: {settings}"
)

# %% [markdown]
# ## Cluster the embedding
# Each model keeps its best-likelihood start, which is how a user picks without labels: the flows their best
# restart, k-means its lowest inertia, the GMM its best likelihood. Spectral clustering and HDBSCAN run on the
# same embedding, on at most `graph_rows` images (their cost grows faster than linearly). HDBSCAN chooses its own
# number of clusters; its noise points count as one more cluster.

# %%
flows = MAFMixture(n_clusters, **settings).fit(Z)
flow_labels = flows.labels_
rows = [
    {
        **clustering_scores(
            y, flow_labels, method=f"maf_mixture ({preset})", seed=seed
        ),
        "loss": -flows.score(Z),
        "seconds": flows.history_["seconds"],
        "n_reseeds": len(flows.history_["reseeds"]),
    }
]
labels = {"mixture of flows": flow_labels}
for method in ("kmeans", "gmm"):
    labels[method], row, _ = run_baseline(
        method, Z, y, seed=seed, n_init=settings["n_init"]
    )
    rows.append(row)
graph_rows_used = min(graph_rows, len(Z))
if graph_rows_used:
    keep = np.sort(
        np.random.RandomState(seed).choice(len(Z), graph_rows_used, replace=False)
    )
    for method in ("spectral", "hdbscan"):
        _, row, _ = run_baseline(
            method,
            Z[keep],
            y[keep],
            seed=seed,
            n_clusters=n_clusters,
            n_init=settings["n_init"],
        )
        rows.append({**row, "rows": graph_rows_used})
table = pd.DataFrame(rows).set_index("method")
print(
    f"UMAP took {embedding_seconds:.0f} s (0 when cached); "
    f"the flows used {table.loc[rows[0]['method'], 'n_clusters']}"
    f" of {n_clusters} components"
)
table[["ari", "nmi", "accuracy", "purity", "n_clusters", "seconds"]].round(3)

# %% [markdown]
# ## The embedding, coloured by class and by each method's clusters
# A 10-D embedding cannot be drawn, so every panel shows the same 2-D view: the embedding's first two principal
# components. **What to see:** classes that UMAP separates form islands in the first panel. A good clustering
# gives each island one colour. Where the flows and the GMM differ, look at the long or bent islands: a Gaussian
# tends to split them or merge neighbours, a flow can follow them. (Cluster colours are arbitrary per panel.)

# %%
view = PCA(2, random_state=0).fit(Z)
Z2 = view.transform(Z)
panels = {"true class": y, **labels}
fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
for ax, (name, colour) in zip(axes, panels.items()):
    ax.scatter(
        Z2[:, 0],
        Z2[:, 1],
        c=colour,
        s=1,
        cmap=plots.cluster_colours(max(10, colour.max() + 1)),
        vmin=-0.5,
        vmax=max(10, colour.max() + 1) - 0.5,
        rasterized=True,
    )
    ax.set(
        title=f"{variant}: {name}",
        xlabel="view axis 1 (PCA of the embedding)",
        ylabel="view axis 2",
    )
fig.tight_layout()
plots.savefig(fig, "embedding_clusters.png", run_dir)
plt.show()

# %% [markdown]
# ## The flows' density in the same view
# The flows' density lives in the full embedding; what a 2-D view can show is its marginal there. We draw
# points from the fitted mixture and histogram their projection, beside the data's own histogram, both on a
# log scale. **What to see:** the model puts its mass on the data's islands, with their bends; mass between
# islands is density the flows waste.

# %%
draws = view.transform(flows.sample(min(len(Z), 20000), random_state=seed)[0])
edges = [np.linspace(lo, hi, 120) for lo, hi in zip(Z2.min(axis=0), Z2.max(axis=0))]
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (name, points) in zip(
    axes, {"data": Z2, "mixture of flows, sampled": draws}.items()
):
    density, *_ = np.histogram2d(points[:, 0], points[:, 1], bins=edges, density=True)
    mesh = plots.draw_density(ax, edges[0], edges[1], density.T, f"{variant}: {name}")
    ax.set(xlabel="view axis 1", ylabel="view axis 2")
    fig.colorbar(mesh, ax=ax, label="density in the view (log scale)")
fig.tight_layout()
plots.savefig(fig, "flow_density.png", run_dir)
plt.show()

# %% [markdown]
# ## Where each class goes under the flows
# Rows are true classes, columns the flows' clusters; each row sums to 1. **What to see:** one bright cell per
# row is a class captured by one component. An empty column is a component that collapsed.

# %%
fig, ax = plt.subplots(figsize=(6, 5))
plots.plot_contingency(
    contingency(y, flow_labels),
    ax=ax,
    title=f"{variant}: mixture of flows, label -> cluster",
)
plots.savefig(fig, "contingency.png", run_dir)
plt.show()

# %%
record_metrics(
    rows,
    run_dir,
    dataset=dataset,
    variant=variant,
    subsample=subsample,
    pca=pca,
    embedding_dim=embedding_dim,
    n_neighbors=n_neighbors,
    min_dist=min_dist,
    preset=preset,
    notebook="06_embedding",
    embedding_seconds=embedding_seconds,
    epochs=settings["epochs"],
    n_init=settings["n_init"],
    algorithm=settings["algorithm"],
)
