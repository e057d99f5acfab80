"""The README's result tables, generated from the committed ``results/*/runs.csv`` (and the performance table
from ``bench/latest.md``) between markers:

    <!-- results:density -->
    ...the table, written by this script...
    <!-- /results:density -->

    python bench/readme_tables.py           # rewrite README.md's generated tables
    python bench/readme_tables.py --check   # exit 1, naming the table, when README.md differs from results/

``tests/test_readme.py`` runs the check, so a README number that drifts from its table fails the tests.
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
            row[label] = f"{gap:+.{digits}f} (p {p:.2f})" if np.isfinite(p) else f"{gap:+.{digits}f}"
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
        {"`MAFMixture.density` - GMM": "gmm, early stopping", 'defaults (`base="diag"`) - GMM': "diag"},
    )
    preset = gaps(frame, "test loglik", "gmm, early stopping")
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
            "defaults + early stopping - GMM": "em_hard, early stopping",
            '`base="gmm"`, early stopping - GMM': "gmm, em_hard, early stopping",
            "paper - GMM": "paper",
        },
    )
    means = frame.groupby("setup")["ari"].mean()
    lines = []
    for label, setup in (
        ("The defaults", "defaults"),
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


TABLES = {"density": density_table, "defaults": defaults_table, "performance": performance_table}


def render(readme: str) -> str:
    """``readme`` with every generated table replaced by its current contents."""
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- results:{name} -->)\n.*?(<!-- /results:{name} -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README.md has no <!-- results:{name} --> ... <!-- /results:{name} --> markers")
        readme = pattern.sub(lambda m: f"{m.group(1)}\n{make()}\n{m.group(2)}", readme)
    return readme


def stale_tables(readme: str) -> list[str]:
    """The names of the generated tables whose README text differs from ``results/``."""
    rendered = render(readme)
    return [name for name in TABLES if _block(readme, name) != _block(rendered, name)]


def _block(text: str, name: str) -> str:
    match = re.search(rf"<!-- results:{name} -->\n(.*?)<!-- /results:{name} -->", text, re.S)
    return match.group(1) if match else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether README.md is current")
    args = parser.parse_args(argv)
    path = ROOT / "README.md"
    readme = path.read_text()
    if args.check:
        stale = stale_tables(readme)
        if stale:
            print(f"README.md differs from results/ in: {', '.join(stale)}; run python bench/readme_tables.py")
            return 1
        print("README.md's generated tables match results/")
        return 0
    rendered = render(readme)
    if rendered == readme:
        print("README.md's generated tables were already current")
    else:
        path.write_text(rendered)
        print(f"README.md: rewrote {', '.join(stale_tables(readme))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
