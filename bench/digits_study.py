"""What moves nfmix's image set-up against k-means on digits, one change at a time (the study that gave the
preset its 10 restarts: with 3 it trailed k-means, ARI 0.651 vs 0.666).

Each row changes one thing from ``presets.NFMIX_IMAGES`` (H=1024, 10 epochs of batch 1000, Adam 1e-3, gradient
ML, 10 k-means starts): the budget (epochs), the starts (3 restarts, the preset's before), the algorithm, the
network's size, the scaling (standardised pixels), and the pixels' discreteness (dequantisation: each pixel, one
of 17 levels, gets uniform noise of one level's width, drawn once). k-means (10 inits) and the GMM (10 inits) are
scored on the same seeds.

    python bench/digits_study.py [--seeds 0 1 2 3 4 5]     # writes results/digits/study.csv and study.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nfmix import MAFMixture, load_dataset, presets
from nfmix.baselines import baseline_labels
from nfmix.metrics import clustering_scores
from nfmix.stats import interval, paired_test
from nfmix.sweep import markdown_table

OUT = Path(__file__).resolve().parent.parent / "results" / "digits"
BASE = presets.NFMIX_IMAGES
SETUPS = {
    "nfmix image set-up": ({}, None),
    "50 epochs": (dict(epochs=50), None),
    "3 restarts": (dict(n_init=3), None),
    "hard EM": (dict(algorithm="em_hard"), None),
    "H=64": (dict(hidden_units=(64,)), None),
    "standardised pixels": ({}, "standardise"),
    "dequantised pixels": ({}, "dequantise"),
}


def transform(X, how, seed):
    if how == "standardise":
        return ((X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-3)).astype(np.float32)
    if how == "dequantise":  # pixels are k/16: spread each over [k/16, (k+1)/16)
        return (X + np.random.RandomState(seed).uniform(0, 1 / 16, X.shape)).astype(np.float32)
    return X


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    args = parser.parse_args(argv)
    X, y = load_dataset("digits")
    rows = []
    for seed in args.seeds:
        for method in ("kmeans", "gmm"):
            rows.append(clustering_scores(y, baseline_labels(method, X, 10, seed=seed), method=method, seed=seed))
        for name, (overrides, how) in SETUPS.items():
            started = time.perf_counter()
            data = transform(X, how, seed)
            model = MAFMixture(10, **{**BASE, **overrides}, random_state=seed).fit(data)
            rows.append(
                {
                    **clustering_scores(y, model.labels_, method=name, seed=seed),
                    "nll": -model.score(data),
                    "seconds": time.perf_counter() - started,
                }
            )
        write(pd.DataFrame(rows), args.seeds[: args.seeds.index(seed) + 1])
    return 0


def write(table, seeds) -> None:
    """Tables of the seeds done so far (written after each seed, so a stopped study keeps them)."""
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "study.csv", index=False)
    kmeans = table[table["method"] == "kmeans"].set_index("seed")["ari"]
    summary = []
    for method, group in table.groupby("method", sort=False):
        ari = group.set_index("seed")["ari"]
        low, high = interval(ari)
        summary.append(
            {
                "set-up": method,
                "n": len(ari),
                "ARI mean": round(ari.mean(), 3),
                "95% interval": f"[{low:.3f}, {high:.3f}]",
                "NMI mean": round(group["nmi"].mean(), 3),
                "vs k-means, p (Wilcoxon)": ""
                if method == "kmeans"
                else round(paired_test(ari, kmeans.loc[ari.index]), 4),
            }
        )
    text = (
        f"digits (1797 images), seeds {seeds}: ARI of each set-up and a paired test against k-means.\n\n"
        + markdown_table(pd.DataFrame(summary))
        + "\n"
    )
    (OUT / "study.md").write_text(text)
    print(text, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
