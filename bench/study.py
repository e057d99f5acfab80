"""Scaffolding the study scripts share: a resumable table of runs, the code's version, and per-set summaries
with a Wilcoxon test paired by seed against a baseline set-up.

A study fits one (dataset, seed, set-up) at a time and appends its row to ``runs.csv`` at once, so a study that
was stopped resumes where it stopped: :meth:`RunTable.has` says which triples are done.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from nfmix import __version__
from nfmix.stats import paired_test
from nfmix.sweep import ACCEPTED_LOG, markdown_table, package_digest

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
    """``out/runs.csv``: one row per (dataset, seed, set-up), each stamped with the nfmix version, the commit and a
    hash of the package source that computed it (:func:`nfmix.sweep.package_digest`).

    A row is current when its version and package hash are today's; only current rows count as done, so a change
    to ``nfmix/`` (a preset included) makes the study fit every run again, replacing each old row as its new one
    comes. ``accept_code_change=True`` is for an edit known not to change results (a comment, a docstring): the
    rows of today's version with another package hash are stamped current instead, and that is logged to
    ``out/accepted-code-changes.log``. The study script's own set-ups are not in the hash: a changed set-up needs
    a new name.
    """

    def __init__(self, out: Path, accept_code_change: bool = False):
        self.path = Path(out) / "runs.csv"
        self.frame = pd.read_csv(self.path) if self.path.is_file() else pd.DataFrame(columns=KEYS)
        for column in ("nfmix", "package"):
            if column not in self.frame:
                self.frame[column] = None
        self.code = code_version()
        self.package = package_digest()
        self.fitted = 0  # rows added by this process
        if accept_code_change:
            self._accept_code_change()

    @property
    def is_current(self) -> pd.Series:
        """Per row of :attr:`frame`: computed by today's nfmix (its version and package hash)."""
        return (self.frame["nfmix"].astype(str) == __version__) & (self.frame["package"].astype(str) == self.package)

    @property
    def current(self) -> pd.DataFrame:
        """The rows computed by today's nfmix."""
        return self.frame[self.is_current]

    @property
    def n_stale(self) -> int:
        return int((~self.is_current).sum())

    def has(self, dataset: str, seed: int, setup: str) -> bool:
        current = self.current
        return bool(((current["dataset"] == dataset) & (current["seed"] == seed) & (current["setup"] == setup)).any())

    def add(self, row: dict) -> None:
        """Record one finished run, replacing an older row of the same triple, and write the table (atomically: a
        kill leaves the old table or the new)."""
        row = {**row, "nfmix": __version__, "package": self.package, "code": self.code}
        same = (
            (self.frame["dataset"] == row["dataset"])
            & (self.frame["seed"] == row["seed"])
            & (self.frame["setup"] == row["setup"])
        )
        # In the old row's place, so that a study's tables keep their order while it is rerun.
        at = int(np.flatnonzero(same.to_numpy())[0]) if same.any() else len(self.frame)
        parts = [self.frame.iloc[:at], pd.DataFrame([row]), self.frame.iloc[at + 1 if same.any() else at :]]
        self.frame = pd.concat([part for part in parts if len(part)], ignore_index=True)
        self.fitted += 1
        self._write()
        print({key: (round(v, 3) if isinstance(v, float) else v) for key, v in row.items()}, flush=True)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".csv.partial")
        self.frame.to_csv(partial, index=False)
        os.replace(partial, self.path)

    def _accept_code_change(self) -> None:
        changed = (self.frame["nfmix"].astype(str) == __version__) & ~self.is_current & self.frame["package"].notna()
        log = self.path.parent / ACCEPTED_LOG
        if not changed.any():
            print(f"--accept-code-change: no row of nfmix {__version__} differs only in the package hash")
            return
        old = sorted(set(self.frame.loc[changed, "package"].astype(str)))
        self.frame.loc[changed, "package"] = self.package
        self._write()
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with log.open("a") as file:
            file.write(f"{stamp} accepted package {', '.join(old)} -> {self.package} for {int(changed.sum())} row(s)\n")
        print(f"--accept-code-change: {int(changed.sum())} row(s) of package {', '.join(old)} stamped {self.package}")

    def report(self) -> None:
        """Say what this process did: `make results` on current results fits nothing and says so."""
        did = f"fitted {self.fitted} run(s)" if self.fitted else "nothing to fit"
        print(f"{self.path}: {did}; {self.freshness()}")

    def freshness(self) -> str:
        """A sentence for a summary's caption: whether every row is of today's code."""
        if not self.n_stale:
            return f"All {len(self.frame)} runs are of nfmix {__version__}, package {self.package}."
        return (
            f"{self.n_stale} of {len(self.frame)} runs were made by other code than nfmix {__version__}, package "
            f"{self.package} (see the nfmix and package columns); rerunning the study replaces them."
        )


def add_accept_code_change(parser) -> None:
    """The study scripts' ``--accept-code-change`` option (see :class:`RunTable`)."""
    parser.add_argument(
        "--accept-code-change",
        action="store_true",
        help="stamp rows made stale only by an edit of nfmix's source as current (logged): for an edit known not "
        "to change results",
    )


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
        if "seconds" in group and group["seconds"].notna().any():
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
    return pd.DataFrame(rows).fillna("")  # a baseline has no difference from itself, and k-means no seconds


def write_summary(out: Path, caption: str, table: pd.DataFrame) -> None:
    (Path(out) / "summary.md").write_text(caption + "\n\n" + markdown_table(table) + "\n")
    print(markdown_table(table))
