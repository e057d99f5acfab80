"""What moves nfmix's image set-up against k-means on digits, one change at a time (the study that gave the
preset its 10 restarts: with 3 it trailed k-means, ARI 0.651 vs 0.666).

Each row changes one thing from ``presets.NFMIX_IMAGES`` (H=1024, 10 epochs of batch 1000, Adam 1e-3, gradient
ML, 10 k-means starts): the budget (epochs), the starts (3 restarts, the preset's before), the algorithm, the
network's size, the scaling (standardised pixels), and the pixels' discreteness (dequantisation: each pixel, one
of 17 levels, gets uniform noise of one level's width, drawn once). k-means (10 inits) and the GMM (10 inits) are
scored on the same seeds.

    python bench/digits_study.py [--seeds 0 1 2 3 4 5]     # writes results/digits/runs.csv and summary.md

Resumable: a (seed, set-up) already in runs.csv, from today's nfmix, is not fitted again (bench/study.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from study import RunTable, add_accept_code_change, paired_summary, write_summary

from nfmix import MAFMixture, load_dataset, presets
from nfmix.baselines import baseline_labels
from nfmix.metrics import clustering_scores

OUT = Path(__file__).resolve().parent.parent / "results" / "digits"
DATASET = "digits"
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
    parser.add_argument("--out", type=Path, default=OUT)
    add_accept_code_change(parser)
    args = parser.parse_args(argv)
    X, y = load_dataset("digits")
    table = RunTable(args.out, accept_code_change=args.accept_code_change)
    for seed in args.seeds:
        for method in ("kmeans", "gmm"):
            if not table.has(DATASET, seed, method):
                labels = baseline_labels(method, X, 10, seed=seed)
                table.add(clustering_scores(y, labels, dataset=DATASET, setup=method, seed=seed))
        for name, (overrides, how) in SETUPS.items():
            if table.has(DATASET, seed, name):
                continue
            started = time.perf_counter()
            data = transform(X, how, seed)
            model = MAFMixture(10, **{**BASE, **overrides}, random_state=seed).fit(data)
            scores = clustering_scores(y, model.labels_, dataset=DATASET, setup=name, seed=seed)
            table.add({**scores, "nll": -model.score(data), "seconds": time.perf_counter() - started})
    write_summary(
        args.out,
        f"digits ({len(X)} images): ARI and NMI of each set-up, mean ± sd over n seeds; p: Wilcoxon signed-rank, "
        f"paired by seed, against k-means (10 inits). {table.freshness()}",
        paired_summary(table.frame, "kmeans", {"ari": "ARI", "nmi": "NMI"}, versus="k-means"),
    )
    table.report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
