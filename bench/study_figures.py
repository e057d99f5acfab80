"""One figure per study, drawn from its committed table into ``results/<study>/figure.png``.

    python bench/study_figures.py            # all five (`make results` runs it)
    python bench/study_figures.py density    # only some

The site's study pages (docs/studies/) show these figures; each is drawn from the same csv its table comes
from, so the picture and the numbers cannot disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 (the backend first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from study import RunTable  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "results"
GMM = "GMM (n_init=10)"
DENSITY_PRESET = "MAFMixture.density"  # the set-up named after the preset in bench/density_study.py
DEFAULTS = "defaults"
STALE = "made by older code (stale)"


def _runs(study: str) -> pd.DataFrame:
    """A study's table, each row marked ``current`` when today's package computed it (the study's own test)."""
    table = RunTable(RESULTS / study)
    return table.frame.assign(current=table.is_current)


def _per_seed_gap(runs: pd.DataFrame, metric: str, setups: dict[str, str]) -> pd.DataFrame:
    """Each set-up's ``metric`` minus the GMM's on the same (dataset, seed): one row per pair, its set-up label
    marked stale when either row was made by older code."""
    index = ["dataset", "seed"]
    wide = runs.pivot_table(index=index, columns="setup", values=metric, aggfunc="mean")
    current = runs.pivot_table(index=index, columns="setup", values="current", aggfunc="all")
    frames = []
    for label, setup in setups.items():
        if setup not in wide:
            continue
        fresh = current[setup].astype(bool) & current[GMM].astype(bool)
        labels = np.where(fresh, label, f"{label}, {STALE}")
        frames.append(pd.DataFrame({"gap": wide[setup] - wide[GMM], "set-up": labels}).reset_index())
    return pd.concat(frames, ignore_index=True).dropna(subset=["gap"])


def _n(counts: pd.Series) -> str:
    """``n = 6`` or ``n = 3 to 6``: the seeds behind each point cloud."""
    return f"n = {counts.min()}" if counts.min() == counts.max() else f"n = {counts.min()} to {counts.max()}"


def _strip(gaps: pd.DataFrame, order, title: str, xlabel: str, symlog: bool = False):
    figure, ax = plt.subplots(figsize=(9, 0.42 * len(order) + 1.6))
    sns.stripplot(data=gaps, y="dataset", x="gap", hue="set-up", order=order, dodge=True, jitter=0.15, ax=ax)
    ax.axvline(0, color="black", lw=1)
    if symlog:
        ax.set_xscale("symlog", linthresh=1)
    ax.set(title=title, xlabel=xlabel, ylabel="data set")
    ax.legend(title=None, loc="best", fontsize=8)
    return figure


def density() -> plt.Figure:
    runs = _runs("density")
    gaps = _per_seed_gap(
        runs,
        "test loglik",
        {"MAFMixture.density": DENSITY_PRESET, 'defaults (base="diag")': "diag"},
    )
    n = gaps.groupby("dataset")["seed"].nunique()
    return _strip(
        gaps,
        list(runs["dataset"].drop_duplicates()),
        f"Held-out log-likelihood minus the GMM's, one point per seed ({_n(n)})",
        "nats per test point, minus GaussianMixture(k, n_init=10) (symlog: linear within ±1)",
        symlog=True,
    )


def defaults() -> plt.Figure:
    runs = _runs("defaults")
    gaps = _per_seed_gap(
        runs,
        "ari",
        {
            "defaults": DEFAULTS,
            'base="gmm", early stopping (20 checks)': "gmm, em_hard, early stopping",
            "paper": "paper",
        },
    )
    n = gaps.groupby("dataset")["seed"].nunique()
    return _strip(
        gaps,
        list(runs["dataset"].drop_duplicates()),
        f"ARI minus the GMM's on the same seed ({_n(n)} seeds a set)",
        "ARI minus GaussianMixture(k, n_init=10)'s",
    )


def _ari_per_seed(runs: pd.DataFrame, order, reference: str, name: str, ax, **labels) -> None:
    """Each method's ARI on ``ax``, one point per seed, in ``order``, with a dashed line at ``reference``'s mean;
    rows made by older code are drawn in their own colour."""
    made_by = np.where(runs["current"], "today's code", STALE)
    hue = made_by if not runs["current"].all() else None
    sns.stripplot(data=runs, y="method", x="ari", order=order, hue=hue, jitter=0.15, ax=ax)
    mean = runs.loc[runs["method"] == reference, "ari"].mean()
    ax.axvline(mean, color="grey", ls="--", lw=1, label=f"{name} mean ({mean:.3f})")
    ax.set(**labels)
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2, fontsize=8)  # below: clear of the points


def digits() -> plt.Figure:
    """One panel per image set of the study, each with its own set-ups and k-means line."""
    runs = _runs("digits").rename(columns={"setup": "method"})
    sets = list(runs["dataset"].unique())
    heights = [runs.loc[runs["dataset"] == name, "method"].nunique() for name in sets]
    figure, axes = plt.subplots(
        len(sets), 1, figsize=(9, 1.2 + 0.55 * sum(heights) + 1.2 * len(sets)), height_ratios=heights, squeeze=False
    )
    for ax, name in zip(axes[:, 0], sets):
        own = runs[runs["dataset"] == name]
        order = list(own.groupby("method", sort=False)["ari"].mean().index)
        _ari_per_seed(
            own,
            order,
            "kmeans",
            "k-means",
            ax,
            title=f"{name}: ARI per seed, one change at a time ({_n(own.groupby('method')['seed'].nunique())} seeds)",
            xlabel="ARI on every image the set-up was fitted to",
            ylabel="set-up",
        )
    figure.tight_layout()
    return figure


def circles() -> plt.Figure:
    runs = pd.read_csv(RESULTS / "circles" / "runs.csv")
    parts = runs[runs["study"] == "1 partitions"]
    figure, ax = plt.subplots(figsize=(9, 4))
    sns.barplot(data=parts, y="set-up", x="nll", hue="network", ax=ax)
    ax.set(
        title=f"circles: mean NLL of each partition (lower is better; n = {parts['seed'].nunique()} seeds)",
        xlabel="mean negative log-likelihood per point (nats)",
        ylabel="partition",
    )
    ax.legend(title="flow network", fontsize=8)
    return figure


def collapse() -> plt.Figure:
    runs = _runs("collapse").rename(columns={"setup": "method"})
    order = list(runs.groupby("method", sort=False)["ari"].mean().sort_values(ascending=False).index)
    figure, ax = plt.subplots(figsize=(11, 6))
    _ari_per_seed(
        runs,
        order,
        "gmm",
        "GMM",
        ax,
        title=f"F-MNIST 10-D UMAP: ARI on 70,000 images (n = {runs['seed'].nunique()} seeds)",
        xlabel="ARI",
        ylabel="set-up (fitted on 10,000 images)",
    )
    return figure


FIGURES = {"density": density, "defaults": defaults, "digits": digits, "circles": circles, "collapse": collapse}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", help=f"some of {', '.join(FIGURES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.studies) - set(FIGURES))
    if unknown:
        parser.error(f"no study named {', '.join(unknown)}; the studies are {', '.join(FIGURES)}")
    for name in args.studies or FIGURES:
        # seaborn's strip-plot jitter draws from NumPy's global generator: seeded, a figure redrawn from the same
        # runs is the same file, so regenerating the results changes no figure that no number changed.
        np.random.seed(0)
        figure = FIGURES[name]()
        figure.tight_layout()
        path = RESULTS / name / "figure.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        print(f"wrote {path.relative_to(RESULTS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
