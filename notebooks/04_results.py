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
# # 04 · Results: mixtures of flows against the classic baselines
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/nfmix/nfmix/blob/v0.2.0/notebooks/04_results.ipynb)
#
# This notebook reads the tables that batch runs write (`python -m nfmix.sweep sweeps/<name>.yaml` ->
# `results/<name>/runs.csv`) and shows them as the paper does: mean ± std over initialisations, and the run with
# the best likelihood. The repository commits the CSVs of its own runs, so this notebook needs no training.
# The plots come first, then small tables with one number a cell, and the full tables at the end.

# %%
try:  # Colab installs nfmix; a local checkout has it from `pip install -e .`
    import nfmix  # noqa: F401 (importing it is the check)
except ModuleNotFoundError:
    # %pip install -q "nfmix @ git+https://github.com/nfmix/nfmix@v0.2.0"
    import nfmix  # noqa: F401 (importing it is the check)

# %% tags=["parameters"]
# the folder (or URL) with one sub-folder per sweep; "" is the tables shipped with nfmix
results_dir: str = ""
# comma-separated sweep names to show
sweeps: str = "toy,images,embedding"  # @param {type:"string"}
metric: str = "ari"  # @param ["ari", "nmi", "accuracy", "purity"]

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from nfmix.published import published_baselines
from nfmix.sweep import significance, summarise, with_variant
from nfmix.tables import results_file

tables = []
for name in [s.strip() for s in sweeps.split(",") if s.strip()]:
    path = results_file(name, "runs.csv", results_dir)
    if path is not None:
        tables.append(pd.read_csv(path).assign(sweep=name))
    else:
        print(
            f"no {name}/runs.csv in {results_dir or 'nfmix'}: "
            f"run `python -m nfmix.sweep sweeps/{name}.yaml` first"
        )
runs = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
if not runs.empty:
    runs = with_variant(runs)
print(f"{len(runs)} result rows from {runs['run'].nunique() if len(runs) else 0} runs")

# %% [markdown]
# ## Mixture of flows against the baselines, per dataset
# **What to see:** each bar is a method's mean score over seeds, with the standard deviation as error bar.
# On the 2D sets, look for the flows beating the GMM where clusters are curved (moons, smile, pinwheel; both
# separate the two bananas). Circles is the exception: there the flows, k-means and the GMM all split the two
# rings into left and right halves (ARI about 0), and only the graph-based baselines can follow a ring. On
# images, compare the flows with k-means and the GMM.

# %%
if not runs.empty:
    order = sorted(runs["method"].unique(), key=lambda m: (not m.startswith("maf"), m))
    grid = sns.catplot(
        data=runs,
        x="variant",
        y=metric,
        hue="method",
        hue_order=order,
        kind="bar",
        errorbar="sd",
        height=4,
        aspect=2.4,
    )
    grid.set_axis_labels("dataset", metric.upper())
    grid.figure.suptitle(
        f"{metric.upper()} by dataset and method (mean ± sd over seeds)", y=1.03
    )
    plt.show()

# %% [markdown]
# ## At a glance: one number a cell
# The mean score over seeds of each method on each dataset, with the number of seeds n beside it. The full
# tables, with standard deviations and 95% intervals, are at the end of this notebook.

# %%
if not runs.empty:
    per_seed = runs.groupby(["sweep", "variant", "method", "seed"])[metric].mean()
    cells = per_seed.groupby(["sweep", "variant", "method"]).agg(["mean", "count"])
    at_a_glance = cells.apply(
        lambda row: f"{row['mean']:.3f} (n={int(row['count'])})", axis=1
    ).unstack("method")
    at_a_glance = at_a_glance.fillna("not run")
else:
    at_a_glance = "no sweep tables to show"
at_a_glance

# %% [markdown]
# ## Which differences are real
# Each flow set-up against the better of k-means and the GMM on every dataset, paired by seed (the same seed
# gives both the same data and embedding). The verdict is a win or a loss only where the two-sided Wilcoxon
# signed-rank test gives p < 0.05 and the means differ by at least 0.01 ARI; otherwise it is a tie. With n = 5
# pairs or fewer the test cannot reach p < 0.05 at all, so small-n cells are ties by construction.

# %%
tests = significance(runs) if not runs.empty else pd.DataFrame()
tests.round(4)

# %% [markdown]
# ## Our baselines beside the published ones
# The original code published random, k-means and GMM scores for the image sets. **What to see:** where we
# ran the same baseline, our number should sit near the published one. That confirms that the data and the
# metrics match the paper's.

# %%
published = published_baselines().assign(source="published")
ours = (
    runs[runs["method"].isin(["random", "kmeans", "gmm"])]
    .groupby(["variant", "method"])[metric]
    .mean()
    .reset_index()
    .assign(source="nfmix")
    if not runs.empty
    else pd.DataFrame()
)
side_by_side = pd.concat(
    [published[["variant", "method", metric, "source"]], ours], ignore_index=True
)
side_by_side = side_by_side.pivot_table(
    index=["variant", "method"], columns="source", values=metric
).round(3)
side_by_side.astype(object).where(side_by_side.notna(), "not run here")

# %% [markdown]
# ## The circles question: why every mixture splits the rings left and right
# On circles, the flows, k-means and the GMM all cut the two rings into a left and a right half (ARI ≈ 0).
# `bench/circles_study.py` measures why (`results/circles/`). First, each flow learns its own part of the data,
# supervised: either one ring, or one of the halves that fitting finds. The mixture of those flows then gives
# each partition's likelihood. Second, hard EM, soft EM and gradient ML start from the true rings and train on.
# **What to see:** the left panel compares the partitions' negative log-likelihood (lower is better) for the
# paper's network and a larger one; the right panel shows, per algorithm, whether training that starts on the
# rings stays there (ARI 1) or leaves them (ARI 0).

# %%
circles_path = results_file("circles", "runs.csv", results_dir)
if circles_path is not None:
    circles = pd.read_csv(circles_path)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    partitions = circles[circles["study"] == "1 partitions"]
    sns.barplot(
        data=partitions, x="network", y="nll", hue="set-up", errorbar="sd", ax=axes[0]
    )
    axes[0].set(
        title="circles: likelihood of each partition (mean ± sd over seeds)",
        xlabel="flow network",
        ylabel="mean negative log-likelihood (nats; lower is better)",
    )
    stability = circles[circles["study"] == "2 start on the rings"]
    sns.barplot(
        data=stability, x="set-up", y="ari", hue="network", errorbar="sd", ax=axes[1]
    )
    axes[1].set(
        title="circles: starting on the true rings, where training ends",
        xlabel="algorithm",
        ylabel="ARI against the rings at the end",
    )
    axes[1].set_ylim(-0.05, 1.05)
    fig.tight_layout()
    plt.show()
    display_table = circles.groupby(["study", "network", "set-up"], sort=False)[
        ["nll", "ari"]
    ].agg(["mean", "size"])
else:
    display_table = "no results/circles/runs.csv: run `python bench/circles_study.py`"
display_table

# %% [markdown]
# ## Clustering in a UMAP embedding: the flows against the GMM, seed by seed
# `sweeps/embedding.yaml` runs `06_embedding`: every seed draws a new UMAP of the images, then clusters that
# one embedding with k-means, a GMM and a mixture of flows. **What to see:** each line joins the GMM's and the
# flows' scores on one seed's embedding. Lines that rise from left to right are seeds where the flows beat the
# GMM in the same embedding; the paired test in the table above says whether the rise is consistent.

# %%
embedding = (
    runs[runs["sweep"] == "embedding"]
    if not runs.empty and "sweep" in runs
    else pd.DataFrame()
)
if not embedding.empty:
    main_variants = sorted(
        v for v in embedding["variant"].unique() if "_umap10_nn20" in v
    )
    fig, axes = plt.subplots(
        1, len(main_variants), figsize=(5 * len(main_variants), 4), squeeze=False
    )
    for ax, variant in zip(axes[0], main_variants):
        frame = embedding[embedding["variant"] == variant]
        pairs = frame[frame["method"].isin(["gmm", "maf_mixture (nfmix)"])].pivot_table(
            index="seed", columns="method", values=metric
        )
        for _seed, pair in pairs.iterrows():
            ax.plot(
                [0, 1],
                [pair["gmm"], pair["maf_mixture (nfmix)"]],
                marker="o",
                color="grey",
                alpha=0.7,
            )
        ax.set_xticks([0, 1], ["GMM", "mixture of flows"])
        ax.set(
            title=f"{variant}: {metric.upper()} per seed (n={len(pairs)})",
            xlabel="clusterer, same embedding",
            ylabel=metric.upper(),
        )
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## What keeps all K flows in use in the embedding
# In the full F-MNIST embedding the flows leave some of their 10 components empty. `bench/embedding_collapse.py`
# (`results/collapse/runs.csv`) fits several set-ups on the same 10,000 embedded images per seed, scores
# them on all 70,000, and lets the likelihood pick one per seed, a rule that needs no labels. **What to see:**
# the left panel gives each set-up's ARI per seed (one dot each) beside the GMM fitted the same way; the right
# panel shows how many of the 10 components each set-up kept in use. A set-up that keeps all 10 but scores below
# the GMM tells us that collapse is not the only obstacle.

# %%
collapse_path = results_file("collapse", "runs.csv", results_dir)
if collapse_path is not None:
    collapse = pd.read_csv(collapse_path).rename(columns={"setup": "method"})
    flows = collapse[~collapse["method"].isin(["kmeans", "gmm"])]
    setups = flows["method"].nunique()
    flows = flows[
        flows.groupby("seed")["method"].transform("size") == setups
    ]  # seeds with every set-up done
    picked = flows.loc[flows.groupby("seed")["nll"].idxmin()].assign(
        method="picked by likelihood"
    )
    shown = pd.concat([collapse, picked], ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), sharey=True)
    sns.stripplot(
        data=shown, y="method", x="ari", hue="seed", palette="viridis", ax=axes[0]
    )
    axes[0].set(
        title="F-MNIST embedding, fit on 10,000 images: ARI per seed "
        f"(n={collapse['seed'].nunique()})",
        xlabel="ARI on all 70,000 images",
        ylabel="clusterer",
    )
    sns.stripplot(
        data=shown,
        y="method",
        x="n_clusters",
        hue="seed",
        palette="viridis",
        legend=False,
        ax=axes[1],
    )
    axes[1].set(
        title="components in use (of 10)",
        xlabel="clusters with at least one image",
        ylabel="",
    )
    fig.tight_layout()
    plt.show()
    collapse_table = (
        shown.groupby("method", sort=False)
        .agg(
            n=("seed", "size"),
            ari=("ari", "mean"),
            nmi=("nmi", "mean"),
            accuracy=("accuracy", "mean"),
            fewest_components=("n_clusters", "min"),
            nll=("nll", "mean"),
        )
        .round(3)
    )
else:
    collapse_table = (
        "no results/collapse/runs.csv: run `python bench/embedding_collapse.py`"
    )
collapse_table

# %% [markdown]
# ## Held-out density: is a mixture of flows ever worse than the Gaussian mixture?
# `bench/density_study.py` (`results/density/`) splits each set 70/30 by seed, fits
# `GaussianMixture(k, n_init=10)` and the nfmix set-ups on the 70%, and scores the mean log-likelihood per point
# on the 30%. `base="gmm"` starts as a full-covariance Gaussian mixture; early stopping keeps each restart's
# best weights on held-out rows, the start included. **What to see:** each dot is one seed's held-out
# log-likelihood minus the GMM's on the same split, so right of the dashed line the flows' density is better.
# Dots beyond the plot's edge (a set-up that overfits a small set by hundreds of nats) sit on the edge. The
# density preset (`MAFMixture.density`, its own set-up in the legend) should never sit left of the line; the
# table gives the paired test.

# %%
from nfmix.stats import compare

density_path = results_file("density", "runs.csv", results_dir)
if density_path is not None:
    density = pd.read_csv(density_path)
    gmm_name = "GMM (n_init=10)"
    gmm_scores = density[density["setup"] == gmm_name].set_index(["dataset", "seed"])[
        "test loglik"
    ]
    flows = density[density["setup"] != gmm_name].join(
        gmm_scores.rename("gmm"), on=["dataset", "seed"]
    )
    flows = flows.assign(gap=(flows["test loglik"] - flows["gmm"]).clip(-2, 2))
    fig, ax = plt.subplots(figsize=(11, 7))
    sns.stripplot(
        data=flows, y="dataset", x="gap", hue="setup", dodge=True, jitter=False, ax=ax
    )
    ax.axvline(0, color="black", linestyle="--", linewidth=1)
    ax.set(
        title="Held-out log-likelihood minus the GMM's, per seed "
        f"(n up to {density['seed'].nunique()})",
        xlabel="test mean log-likelihood - GMM's (nats per point; clipped to ±2)",
        ylabel="data set",
    )
    ax.legend(
        title="nfmix set-up",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize="small",
    )
    fig.tight_layout()
    plt.show()
    tidy = density.rename(columns={"setup": "method", "dataset": "variant"})
    rows = []
    for setup in flows["setup"].unique():
        paired = compare(tidy, setup, gmm_name, metric="test loglik")
        rows += [
            {
                "dataset": row["variant"],
                "set-up": setup,
                "n": row["n"],
                "loglik - GMM": row[setup] - row[gmm_name],
                "p": row["p (Wilcoxon)"],
            }
            for _, row in paired.iterrows()
        ]
    rows = pd.DataFrame(rows)
    print(
        "held-out log-likelihood minus the GMM's, mean over "
        f"n = {rows['n'].min()} to {rows['n'].max()} seeds "
        "per cell, and the Wilcoxon p paired by seed"
    )
    density_table = rows.pivot(
        index="dataset", columns="set-up", values=["loglik - GMM", "p"]
    ).round(3)
else:
    density_table = "no results/density/runs.csv: run `python bench/density_study.py`"
density_table
# %% [markdown]
# ## Full tables
# Each row gives the mean ± standard deviation over runs (seeds). The "best-likelihood" columns show the
# metrics of the run whose model had the lowest final loss, which is how one would choose without labels.

# %%
summary = summarise(runs) if not runs.empty else pd.DataFrame()
summary
