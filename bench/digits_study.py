"""What moves nfmix's image set-up against k-means, one change at a time, on digits and on 10,000 F-MNIST images
projected to 100 principal components (the study that gave the preset its 10 restarts, and its features as they
are: min-max scaling left components of the F-MNIST mixture empty).

Each row changes one thing from ``presets.NFMIX_IMAGES`` (H=1024, 10 epochs of batch 1000, Adam 1e-3, gradient
ML, 10 k-means starts, the features as they are): the budget (epochs), the starts (3 restarts, the preset's
before), the algorithm, the network's size, the scaling (standardised pixels; each feature rescaled to [0, 1] by
the estimator, the default for 2D data), and the pixels' discreteness (dequantisation: each pixel, one of 17
levels, gets uniform noise of one level's width, drawn once). F-MNIST has the rescaling row only. k-means (10
inits) and the GMM (10 inits) are scored on the same seeds.

    python bench/digits_study.py [--seeds 0 1 2 3 4 5] [--sets digits fmnist]   # writes results/digits/

Resumable: a (set, seed, set-up) already in runs.csv, from today's nfmix, is not fitted again (bench/study.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from study import RunTable, add_accept_code_change, paired_summary, write_summary

from nfmix import MAFMixture, load_dataset, presets
from nfmix.baselines import baseline_labels
from nfmix.data import pca_project
from nfmix.metrics import clustering_scores

OUT = Path(__file__).resolve().parent.parent / "results" / "digits"
FMNIST_ROWS = 10_000  # drawn once (subsample seed 0), as notebook 03's subsample; 70,000 take 7x the time
DATASETS = {"digits": "digits", "fmnist": f"fmnist PCA-100 ({FMNIST_ROWS:,} images)"}
BASE = presets.NFMIX_IMAGES
SETUPS = {
    "nfmix image set-up": ({}, None),
    "50 epochs": (dict(epochs=50), None),
    "3 restarts": (dict(n_init=3), None),
    "hard EM": (dict(algorithm="em_hard"), None),
    "H=64": (dict(hidden_units=(64,)), None),
    "rescaled to [0, 1]": (dict(rescale="minmax"), None),
    "standardised pixels": ({}, "standardise"),
    "dequantised pixels": ({}, "dequantise"),
}
SETUPS_PER_SET = {"digits": list(SETUPS), "fmnist": ["nfmix image set-up", "rescaled to [0, 1]"]}


def load(name: str):
    """A study set as ``(X, y)``: digits' pixels, or F-MNIST's first 100 principal components."""
    if name == "digits":
        return load_dataset("digits")
    pixels, y = load_dataset("fmnist", subsample=FMNIST_ROWS, seed=0)
    return pca_project(pixels, 100, seed=0)[0], y


def transform(X, how, seed):
    if how == "standardise":
        return ((X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-3)).astype(np.float32)
    if how == "dequantise":  # pixels are k/16: spread each over [k/16, (k+1)/16)
        return (X + np.random.RandomState(seed).uniform(0, 1 / 16, X.shape)).astype(np.float32)
    return X


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--sets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--out", type=Path, default=OUT)
    add_accept_code_change(parser)
    args = parser.parse_args(argv)
    table = RunTable(args.out, accept_code_change=args.accept_code_change)
    for key in args.sets:
        X, y = load(key)
        dataset = DATASETS[key]
        for seed in args.seeds:
            for method in ("kmeans", "gmm"):
                if not table.has(dataset, seed, method):
                    labels = baseline_labels(method, X, 10, seed=seed)
                    table.add(clustering_scores(y, labels, dataset=dataset, setup=method, seed=seed))
            for name in SETUPS_PER_SET[key]:
                if table.has(dataset, seed, name):
                    continue
                overrides, how = SETUPS[name]
                started = time.perf_counter()
                data = transform(X, how, seed)
                model = MAFMixture(10, **{**BASE, **overrides}, random_state=seed).fit(data)
                scores = clustering_scores(y, model.labels_, dataset=dataset, setup=name, seed=seed)
                table.add({**scores, "nll": -model.score(data), "seconds": time.perf_counter() - started})
    write_summary(
        args.out,
        "Image set-ups, one change at a time: ARI and NMI of each set-up, mean ± sd over n seeds; p: Wilcoxon "
        f"signed-rank, paired by seed, against k-means (10 inits). {table.freshness()}",
        paired_summary(table.frame, "kmeans", {"ari": "ARI", "nmi": "NMI"}, versus="k-means"),
    )
    table.report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
