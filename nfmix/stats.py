"""Uncertainty for results tables: 95% intervals over seeds, and paired tests between two methods."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (NaN, NaN when fewer than two)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def paired_test(a, b) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired scores ``a`` and ``b`` (1.0 when they never differ)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired scores need equal, non-zero lengths; got {len(a)} and {len(b)}")
    if np.allclose(a, b):
        return 1.0
    return float(stats.wilcoxon(a, b).pvalue)


def compare(tidy: pd.DataFrame, method: str, baseline: str, metric: str = "ari", by: str = "variant") -> pd.DataFrame:
    """``method`` against ``baseline`` per ``by`` group, paired by seed: n, both means, and the Wilcoxon p-value."""
    rows = []
    for group, frame in tidy.groupby(by):
        pair = (
            frame[frame["method"].isin([method, baseline])]
            .pivot_table(index="seed", columns="method", values=metric, aggfunc="mean")
            .dropna()
        )
        if method not in pair or baseline not in pair or pair.empty:
            continue
        rows.append(
            {
                by: group,
                "n": len(pair),
                method: pair[method].mean(),
                baseline: pair[baseline].mean(),
                "p (Wilcoxon)": paired_test(pair[method], pair[baseline]),
            }
        )
    return pd.DataFrame(rows)


def against_best_baseline(
    tidy: pd.DataFrame,
    method: str,
    baselines=("kmeans", "gmm"),
    metric: str = "ari",
    by: str = "variant",
    alpha: float = 0.05,
    min_effect: float = 0.01,
) -> pd.DataFrame:
    """``method`` against the baseline with the higher mean on each ``by`` group, paired by seed.

    The verdict is "win" or "loss" only where the Wilcoxon test is significant at ``alpha`` and the means differ
    by at least ``min_effect`` (an ARI gap of 0.0002 can be consistent and still mean nothing), else "tie".
    """
    rows = []
    for group, frame in tidy.groupby(by):
        means = frame[frame["method"].isin(baselines)].groupby("method")[metric].mean()
        if means.empty or method not in set(frame["method"]):
            continue
        best = means.idxmax()
        test = compare(frame, method, best, metric, by)
        if test.empty:
            continue
        row = test.iloc[0]
        better = row[method] > row[best]
        decided = row["p (Wilcoxon)"] < alpha and abs(row[method] - row[best]) >= min_effect
        verdict = ("win" if better else "loss") if decided else "tie"
        rows.append(
            {
                by: group,
                "n": int(row["n"]),
                method: row[method],
                "best baseline": best,
                "baseline mean": row[best],
                "p (Wilcoxon)": row["p (Wilcoxon)"],
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)
