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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/nfmix/nfmix/blob/main/notebooks/04_results.ipynb)
#
# This notebook reads the tables that batch runs write (`python -m nfmix.sweep sweeps/<name>.yaml` ->
# `results/<name>/runs.csv`) and shows them as the paper does: mean ± std over initialisations, and the run with
# the best likelihood. The repository commits the CSVs of its own runs, so this notebook needs no training.

# %%
try:  # Colab: install nfmix (a local checkout already has it through `pip install -e .`)
    import nfmix
except ModuleNotFoundError:
    # %pip install -q "nfmix @ git+https://github.com/nfmix/nfmix"
    import nfmix

# %% tags=["parameters"]
results_dir: str = "../results"  # the folder that holds one sub-folder per sweep
sweeps: str = "toy,images"  # @param {type:"string"} comma-separated sweep names to show
metric: str = "ari"  # @param ["ari", "nmi", "accuracy", "purity"]

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from nfmix.published import published_baselines
from nfmix.sweep import summarise, with_variant

tables = []
for name in [s.strip() for s in sweeps.split(",") if s.strip()]:
    path = Path(results_dir) / name / "runs.csv"
    if path.is_file():
        tables.append(pd.read_csv(path).assign(sweep=name))
    else:
        print(f"{path} not found: run `python -m nfmix.sweep sweeps/{name}.yaml` first")
runs = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
if not runs.empty:
    runs = with_variant(runs)
print(f"{len(runs)} result rows from {runs['run'].nunique() if len(runs) else 0} runs")

# %% [markdown]
# ## Summary tables
# Each row gives the mean ± standard deviation over runs (seeds). The "best-likelihood" columns show the
# metrics of the run whose model had the lowest final loss, which is how one would choose without labels.

# %%
summary = summarise(runs) if not runs.empty else pd.DataFrame()
summary

# %% [markdown]
# ## Mixture of flows against the baselines, per dataset
# **What to see:** each bar is a method's mean score over seeds, with the standard deviation as error bar.
# On the 2D sets, look for the flows beating the GMM where clusters are curved (moons, circles, banana,
# pinwheel). On images, compare the flows with k-means and the GMM.

# %%
if not runs.empty:
    order = sorted(runs["method"].unique(), key=lambda m: (not m.startswith("maf"), m))
    grid = sns.catplot(data=runs, x="variant", y=metric, hue="method", hue_order=order, kind="bar",
                       errorbar="sd", height=4, aspect=2.4)
    grid.set_axis_labels("dataset", metric.upper())
    grid.figure.suptitle(f"{metric.upper()} by dataset and method (mean ± sd over seeds)", y=1.03)
    plt.show()

# %% [markdown]
# ## Our baselines beside the published ones
# The original code published random, k-means and GMM scores for the image sets. **What to see:** where we
# ran the same baseline, our number should sit near the published one. That confirms that the data and the
# metrics match the paper's.

# %%
published = published_baselines().assign(source="published")
ours = (runs[runs["method"].isin(["random", "kmeans", "gmm"])].groupby(["variant", "method"])[metric].mean()
        .reset_index().assign(source="nfmix") if not runs.empty else pd.DataFrame())
side_by_side = pd.concat([published[["variant", "method", metric, "source"]], ours], ignore_index=True)
side_by_side = side_by_side.pivot_table(index=["variant", "method"], columns="source", values=metric).round(3)
side_by_side.astype(object).where(side_by_side.notna(), "not run here")
