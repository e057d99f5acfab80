"""The generated result tables of the README and the site's pages (``PAGES``), from the committed
``results/*/runs.csv`` (and the performance table from ``bench/latest.md``), between markers:

    <!-- results:density -->
    ...the table, written by this script...
    <!-- /results:density -->

    python bench/readme_tables.py           # rewrite every page's generated tables
    python bench/readme_tables.py --check   # exit 1, naming page and table, when one differs from results/

``tests/test_readme.py`` runs the check, so a number that drifts from its table fails the tests.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nfmix.stats import paired_test

ROOT = Path(__file__).resolve().parent.parent
GMM = "GMM (n_init=10)"


def paired_columns(frame: pd.DataFrame, metric: str, setups: dict[str, str], digits: int = 3) -> pd.DataFrame:
    """Per data set: n, the GMM's mean ``metric``, and for each set-up (``{column label: setup}``) its mean
    difference from the GMM on the same seeds with the Wilcoxon p-value, as one cell each."""
    rows = []
    for name, group in frame.groupby("dataset", sort=False):
        by_setup = group.pivot_table(index="seed", columns="setup", values=metric, aggfunc="mean")
        if GMM not in by_setup:
            continue
        row = {"data set": name, "n": int(by_setup[GMM].notna().sum()), "GMM": f"{by_setup[GMM].mean():.{digits}f}"}
        for label, setup in setups.items():
            if setup not in by_setup:
                row[label] = "not run"
                continue
            pair = by_setup[[setup, GMM]].dropna()
            gap = (pair[setup] - pair[GMM]).mean()
            p = paired_test(pair[setup], pair[GMM]) if len(pair) > 1 else np.nan
            said = [f"p {p:.2f}"] if np.isfinite(p) else []
            if len(pair) != row["n"]:  # fewer seeds than the GMM's n: say how many this cell is over
                said.append(f"n={len(pair)}")
            row[label] = f"{gap:+.{digits}f}" + (f" ({', '.join(said)})" if said else "")
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def gaps(frame: pd.DataFrame, metric: str, setup: str) -> pd.DataFrame:
    """Per data set: n, the mean of ``setup`` minus the GMM's on the same seeds, its p, and ``setup``'s mean."""
    rows = []
    for name, group in frame.groupby("dataset", sort=False):
        by_setup = group.pivot_table(index="seed", columns="setup", values=metric, aggfunc="mean")
        if GMM in by_setup and setup in by_setup:
            pair = by_setup[[setup, GMM]].dropna()
            rows.append(
                {
                    "dataset": name,
                    "n": len(pair),
                    "gap": (pair[setup] - pair[GMM]).mean(),
                    "p": paired_test(pair[setup], pair[GMM]) if len(pair) > 1 else np.nan,
                    "mean": pair[setup].mean(),
                }
            )
    return pd.DataFrame(rows).set_index("dataset")


def _listed(gaps_below: pd.Series) -> str:
    """``"iris (-0.079), wine (-0.020)"``, or "none"."""
    return ", ".join(f"{name} ({gap:+.3f})" for name, gap in gaps_below.items()) or "none"


def density_table() -> str:
    frame = pd.read_csv(ROOT / "results" / "density" / "runs.csv")
    table = paired_columns(
        frame,
        "test loglik",
        {"`MAFMixture.density` - GMM": "MAFMixture.density", 'defaults (`base="diag"`) - GMM': "diag"},
    )
    preset = gaps(frame, "test loglik", "MAFMixture.density")
    below = preset[preset["gap"] < -0.01]
    above = preset[(preset["gap"] > 0) & (preset["p"] < 0.05)]
    return (
        "Held-out mean log-likelihood per point (nats; 70/30 split per seed): the GMM's, and each set-up's "
        "difference from it, mean over n seeds, with the Wilcoxon p paired by seed "
        "(`results/density/summary.md` has every set-up).\n\n" + markdown(table) + "\n\n"
        f"`MAFMixture.density` is more than 0.01 nats a point below the GMM on: {_listed(below['gap'])}. "
        f"It is above the GMM with p < 0.05 on: {', '.join(above.index) or 'none'}."
    )


CURVED_TARGETS = {"moons": 0.95, "moons (fresh draw)": 0.90, "smile": 0.40}  # the ARI floors


def defaults_table() -> str:
    frame = pd.read_csv(ROOT / "results" / "defaults" / "runs.csv")
    table = paired_columns(
        frame,
        "ari",
        {
            "defaults - GMM": "defaults",
            'flows alone (`base="diag"`) - GMM': "diag",
            "defaults, racing - GMM": "defaults, racing",
            '`base="gmm"`, early stopping - GMM': "gmm, em_hard, early stopping",
            "paper - GMM": "paper",
        },
    )
    means = frame.groupby("setup")["ari"].mean()
    lines = []
    for label, setup in (
        ("The defaults", "defaults"),
        ('The flows alone (`base="diag"`, the 0.2 defaults)', "diag"),
        ("The defaults, racing (`n_init_kept=3`)", "defaults, racing"),
        ('`base="gmm"` with early stopping', "gmm, em_hard, early stopping"),
    ):
        if setup not in means:
            continue
        gap = gaps(frame, "ari", setup)
        low = gap[gap["gap"] < -0.01]
        floors = [
            f"{name} {gap.loc[name, 'mean']:.3f} (floor {floor})"
            for name, floor in CURVED_TARGETS.items()
            if name in gap.index
        ]
        lines.append(
            f"{label}: mean ARI {means[setup]:.3f} over every set and seed (the GMM's "
            f"{means[GMM]:.3f}); more than 0.01 below the GMM on: {_listed(low['gap'])}; curved sets: "
            f"{', '.join(floors)}."
        )
    return (
        "ARI on all the rows: the GMM's, and each set-up's difference from it, mean over n seeds, with the "
        "Wilcoxon p paired by seed (`results/defaults/summary.md` has every candidate).\n\n"
        + markdown(table)
        + "\n\n"
        + "\n".join(f"- {line}" for line in lines)
    )


def performance_table() -> str:
    return (ROOT / "bench" / "latest.md").read_text().strip()  # bench/bench_speed.py's last run, as it wrote it


def _seed_means(frame: pd.DataFrame, keys: dict, metric: str = "ari") -> pd.Series:
    """Mean of ``metric`` per method over seeds (a seed counted once), for the rows matching ``keys``."""
    rows = frame.loc[(frame[list(keys)] == pd.Series(keys)).all(axis=1)]
    return rows.groupby(["method", "seed"])[metric].mean().groupby("method").agg(["mean", "count"])


def _seeds(n: pd.Series) -> str:
    """``"n = 6 seeds a set"``, or ``"n = 1 to 6 seeds a set"`` when the sets differ."""
    low, high = int(n.min()), int(n.max())
    return f"n = {low} seeds a set" if low == high else f"n = {low} to {high} seeds a set"


EMBEDDING_PRESET = 'gradient ML (preset: init="gmm")'  # the preset's row in bench/embedding_collapse.py


def _mean_or_not_run(means: pd.DataFrame, setup: str) -> str:
    return f"{means.loc[setup, 'mean']:.3f}" if setup in means.index else "not yet run"


def which_table(docs: str = "docs/") -> str:
    """ "Which clusterer when": one row per kind of data, with the measured numbers behind it and links to the
    study pages (``docs`` is the path from the page to docs/)."""
    defaults = pd.read_csv(ROOT / "results" / "defaults" / "runs.csv")
    ari = defaults.groupby(["dataset", "setup"])["ari"].agg(["mean", "count"])
    density = gaps(pd.read_csv(ROOT / "results" / "density" / "runs.csv"), "test loglik", "MAFMixture.density")
    toy = _seed_means(pd.read_csv(ROOT / "results" / "toy" / "runs.csv"), {"dataset": "circles"})
    embedded = pd.read_csv(ROOT / "results" / "collapse" / "runs.csv").groupby("setup")["ari"].agg(["mean", "count"])

    def cell(name, setup):
        return f"{ari.loc[(name, setup), 'mean']:.3f}"

    n_defaults = int(ari["count"].min())
    below = int((density["gap"] < -0.01).sum())
    above = int(((density["gap"] > 0) & (density["p"] < 0.05)).sum())
    flows = "maf_mixture (nfmix)"
    rows = [
        (
            "curved clusters in a few dimensions (moons, smile)",
            "`MAFMixture(k)` (the defaults)",
            f"moons ARI {cell('moons', 'defaults')} against the GMM's {cell('moons', GMM)}; smile "
            f"{cell('smile', 'defaults')} against {cell('smile', GMM)} (n = {n_defaults} seeds; "
            f"[defaults study]({docs}studies/defaults.md))",
        ),
        (
            "small, nearly Gaussian clusters (iris, breast cancer)",
            "`MAFMixture(k)` too: its AIC keeps the Gaussian mixture there",
            f"iris ARI: GMM {cell('iris', GMM)}, defaults {cell('iris', 'defaults')}, the flows alone "
            f"{cell('iris', 'diag')}; breast cancer: {cell('breast cancer', GMM)}, "
            f"{cell('breast cancer', 'defaults')}, {cell('breast cancer', 'diag')} (n = {n_defaults}; "
            f"[defaults study]({docs}studies/defaults.md))",
        ),
        (
            "a density: held-out log-likelihood",
            "`MAFMixture.density(k)`",
            f"more than 0.01 nats a point below the GMM on {below} of {len(density)} sets, above it with "
            f"p < 0.05 on {above} ({_seeds(density['n'])}; "
            f"[density study]({docs}studies/density.md))",
        ),
        (
            "clusters defined by connectivity (rings)",
            "spectral clustering or HDBSCAN",
            f"circles ARI: spectral {toy.loc['spectral', 'mean']:.3f}, HDBSCAN {toy.loc['hdbscan', 'mean']:.3f}, "
            f"flows {toy.loc[flows, 'mean']:.3f} (n = {int(toy.loc[flows, 'count'])}; "
            f"[circles study]({docs}studies/circles.md))",
        ),
        (
            "images",
            "k-means or a GMM in a UMAP embedding",
            f"F-MNIST, 10-D UMAP (fitted on 10,000 images, scored on 70,000), ARI: k-means "
            f"{embedded.loc['kmeans', 'mean']:.3f}, GMM {embedded.loc['gmm', 'mean']:.3f}, flows "
            f"(`NFMIX_EMBEDDING`) {_mean_or_not_run(embedded, EMBEDDING_PRESET)} "
            f"(n = {int(embedded.loc['gmm', 'count'])}; [embedding study]({docs}studies/embedding.md))",
        ),
    ]
    return markdown(pd.DataFrame(rows, columns=["your data", "use", "measured (results/)"]))


METHOD_NAMES = {
    "maf_mixture (nfmix)": "flows, nfmix set-up",
    "maf_mixture (nfmix+em_hard)": "flows, hard EM",
    "maf_mixture (paper)": "flows, paper",
    "kmeans": "k-means",
    "gmm": "GMM",
    "spectral": "spectral",
    "ward": "Ward",
    "hdbscan": "HDBSCAN",
}


def sweep_table(sweep: str, metric: str = "ari") -> str:
    """A sweep at a glance: the mean ``metric`` over seeds for each data set and method, one number a cell with
    its n (the full table, with intervals, is ``results/<sweep>/summary.md``)."""
    from nfmix.sweep import with_variant

    runs = pd.read_csv(ROOT / "results" / sweep / "runs.csv")  # the sweep put any archived rows it still uses in it
    runs = with_variant(runs[runs["method"].isin(METHOD_NAMES)])
    per_seed = runs.groupby(["variant", "method", "seed"])[metric].mean()
    cells = per_seed.groupby(["variant", "method"]).agg(["mean", "count"])
    wide = cells.apply(lambda row: f"{row['mean']:.3f} (n={int(row['count'])})", axis=1).unstack("method")
    wide = wide[[m for m in METHOD_NAMES if m in wide]].rename(columns=METHOD_NAMES).fillna("not run")
    means = cells["mean"].unstack("method")
    tied = means.ge(means.max(axis=1) - 0.0005, axis=0)  # equal at the table's three decimals
    best = tied.apply(
        lambda row: "all" if row[means.columns].all() else "; ".join(METHOD_NAMES[m] for m in row.index[row]), axis=1
    )
    table = wide.assign(highest=best).reset_index().rename(columns={"variant": "data set", "highest": "highest mean"})
    return f"{metric.upper()}, mean over n seeds:\n\n" + markdown(table)


def paired_table(sweeps=("toy", "images")) -> str:
    """Each flows set-up but the paper's against the better of k-means and the GMM, per data set, paired by seed:
    the sweeps' own ``significance.csv`` (written with their runs.csv by :mod:`nfmix.sweep`), one row each."""
    rows = []
    for sweep in sweeps:
        tests = pd.read_csv(ROOT / "results" / sweep / "significance.csv")
        for _, test in tests[tests["setup"] != "maf_mixture (paper)"].iterrows():
            n = int(test["n"])
            rows.append(
                {
                    "data set": test["variant"],
                    "flows": METHOD_NAMES[test["setup"]],
                    "n": n,
                    "flows ARI": f"{test['flows mean']:.3f}",
                    "better of k-means and GMM": f"{METHOD_NAMES[test['best baseline']]} {test['baseline mean']:.3f}",
                    "p": f"{test['p (Wilcoxon)']:.3f}" if n > 1 else "none at n = 1",
                    "verdict": test["verdict"],
                }
            )
    return (
        "ARI, mean over n seeds; p: Wilcoxon signed-rank, paired by seed. A win or a loss needs p < 0.05 and a gap "
        "of at least 0.01, so with n = 5 seeds or fewer every cell is a tie.\n\n" + markdown(pd.DataFrame(rows))
    )


def embedding_table() -> str:
    """The embedding sweep at a glance, and its flows against the better of k-means and the GMM, paired by seed."""
    return sweep_table("embedding") + "\n\n" + paired_table(("embedding",))


def study_summary(study: str) -> str:
    """A study's own summary (``results/<study>/summary.md``, written by its script from its runs.csv)."""
    return (ROOT / "results" / study / "summary.md").read_text().strip()


TABLES = {
    "density": lambda docs: density_table(),
    "defaults": lambda docs: defaults_table(),
    "performance": lambda docs: performance_table(),
    "which": which_table,
    "toy": lambda docs: sweep_table("toy"),
    "images": lambda docs: sweep_table("images"),
    "paired": lambda docs: paired_table(),
    "embedding": lambda docs: embedding_table(),
    "digits": lambda docs: study_summary("digits"),
    "circles": lambda docs: study_summary("circles"),
    "collapse": lambda docs: study_summary("collapse"),
}
# The files with generated tables, each holding some of TABLES between their markers.
PAGES = [
    "README.md",
    "docs/index.md",
    "docs/results.md",
    "docs/studies/density.md",
    "docs/studies/defaults.md",
    "docs/studies/digits.md",
    "docs/studies/circles.md",
    "docs/studies/embedding.md",
    "docs/performance.md",
]


def render(text: str, page: str = "README.md") -> str:
    """``text`` (of ``page``, a path from the root) with every generated table it holds replaced by the table's
    current contents."""
    docs = "docs/" if not page.startswith("docs/") else "../" * (page.count("/") - 1)
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- results:{name} -->)\n.*?(<!-- /results:{name} -->)", re.S)
        if pattern.search(text):
            table = make(docs)
            text = pattern.sub(lambda m: f"{m.group(1)}\n{table}\n{m.group(2)}", text)
    return text


def stale_tables(text: str, page: str = "README.md", rendered: str | None = None) -> list[str]:
    """The names of the generated tables whose text in ``page`` differs from ``results/`` (``rendered``: the
    page's :func:`render`, if the caller has it already)."""
    rendered = render(text, page) if rendered is None else rendered
    return [name for name in TABLES if _block(text, name) != _block(rendered, name)]


def missing_tables() -> list[str]:
    """Tables that no page shows: each must appear somewhere, or it is dead code."""
    texts = [(ROOT / page).read_text() for page in PAGES]
    return [name for name in TABLES if not any(f"<!-- results:{name} -->" in text for text in texts)]


def _block(text: str, name: str) -> str:
    match = re.search(rf"<!-- results:{name} -->\n(.*?)<!-- /results:{name} -->", text, re.S)
    return match.group(1) if match else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the pages are current")
    args = parser.parse_args(argv)
    missing = missing_tables()
    if missing:
        print(f"no page has the markers of: {', '.join(missing)}")
        return 1
    stale = {}
    for page in PAGES:
        path = ROOT / page
        text = path.read_text()
        rendered = render(text, page)
        stale[page] = stale_tables(text, page, rendered)
        if stale[page] and not args.check:
            path.write_text(rendered)
            print(f"{page}: rewrote {', '.join(stale[page])}")
    if args.check and any(stale.values()):
        changed = "; ".join(f"{page} ({', '.join(names)})" for page, names in stale.items() if names)
        print(f"differs from results/: {changed}; run python bench/readme_tables.py")
        return 1
    if not any(stale.values()):
        print("the generated tables were already current: " + ", ".join(PAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
