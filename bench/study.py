"""Scaffolding the study scripts share: a resumable table of runs, the code's version, and per-set summaries
with a Wilcoxon test paired by seed against a baseline set-up.

A study fits one (dataset, seed, set-up) at a time and appends its row to ``runs.csv`` at once, so a study that
was stopped resumes where it stopped: :meth:`RunTable.has` says which triples are done.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from nfmix import __version__
from nfmix.stats import paired_test
from nfmix.sweep import markdown_table

KEYS = ["dataset", "seed", "setup"]


def code_version() -> str:
    """The commit the study's code is at (a ``git worktree`` snapshot while it runs), ``+edits`` if it differs."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "nfmix", "bench"],
            cwd=here.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+edits" if dirty else "")


class RunTable:
    """``out/runs.csv``: one row per (dataset, seed, set-up), each stamped with the nfmix version and commit."""

    def __init__(self, out: Path):
        self.path = Path(out) / "runs.csv"
        self.frame = pd.read_csv(self.path) if self.path.is_file() else pd.DataFrame(columns=KEYS)
        self.code = code_version()
        self._done = set(zip(self.frame["dataset"], self.frame["seed"], self.frame["setup"]))

    def has(self, dataset: str, seed: int, setup: str) -> bool:
        return (dataset, seed, setup) in self._done

    def add(self, row: dict) -> None:
        """Append one finished run and write the table (atomically: a kill leaves the old table or the new)."""
        row = {**row, "nfmix": __version__, "code": self.code}
        self.frame = (
            pd.concat([self.frame, pd.DataFrame([row])], ignore_index=True) if len(self.frame) else pd.DataFrame([row])
        )
        self._done.add((row["dataset"], row["seed"], row["setup"]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".csv.partial")
        self.frame.to_csv(partial, index=False)
        os.replace(partial, self.path)
        print({key: (round(v, 3) if isinstance(v, float) else v) for key, v in row.items()}, flush=True)


def paired_summary(done: pd.DataFrame, baseline: str, metrics: dict[str, str], versus: str) -> pd.DataFrame:
    """Per set and set-up: n, each metric's mean (± sd with n > 1), and against ``baseline`` (``versus`` in the
    column names) on the same seeds the mean difference and a Wilcoxon p. ``metrics`` maps a column of ``done``
    to its name in the table."""
    rows = []
    for (name, setup), group in done.groupby(["dataset", "setup"], sort=False):
        reference = done[(done["dataset"] == name) & (done["setup"] == baseline)].set_index("seed")
        paired = group.set_index("seed").join(reference.add_suffix(" baseline"), how="inner")
        row = {"set": name, "set-up": setup, "n": len(group)}
        for column, label in metrics.items():
            values = group[column]
            row[label] = f"{values.mean():.3f}" + (f" ± {values.std():.3f}" if len(group) > 1 else "")
        if "seconds" in group:
            row["seconds"] = f"{group['seconds'].mean():.1f}"
        if setup != baseline and len(paired) > 1:
            for column, label in metrics.items():
                ours, theirs = paired[column].to_numpy(float), paired[f"{column} baseline"].to_numpy(float)
                # NaN or -inf (a test point beyond every component's reach) counts as the worst finite score.
                both = np.r_[ours, theirs]
                floor = both[np.isfinite(both)].min() if np.isfinite(both).any() else 0.0
                ours, theirs = (np.nan_to_num(a, nan=floor, neginf=floor) for a in (ours, theirs))
                row[f"{label} - {versus}"] = f"{np.mean(ours - theirs):+.3f}"
                row[f"p {label}"] = f"{paired_test(ours, theirs):.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def write_summary(out: Path, caption: str, table: pd.DataFrame) -> None:
    (Path(out) / "summary.md").write_text(caption + "\n\n" + markdown_table(table) + "\n")
    print(markdown_table(table))
