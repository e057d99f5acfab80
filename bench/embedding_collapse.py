"""What keeps all K flows in use in a UMAP embedding of Fashion-MNIST (issue: collapse study).

Each seed's embedding is the sweep's own (nfmix.embedding defaults, cached on disk). To fit many set-ups on this
2-core machine, every set-up trains on the same 10,000 random images of the embedding and then labels all 70,000;
k-means and the GMM (10 inits each, the GMM keeping its best-likelihood init) are fitted the same way. Every
flows model keeps its best-likelihood restart, and "picked by likelihood" is, per seed, the set-up with the lowest
NLL on all 70,000 points: a rule that needs no labels. (BIC's penalty, log(10,000)/2 nats per parameter, comes
to under 2 nats a point for these flows, far less than their NLL gap to the GMM, so it would pick the same.)

    python bench/embedding_collapse.py [--seeds 0 1 2 3 4 5] [--fit-rows 10000]
    python bench/embedding_collapse.py --accept-code-change --seeds   # re-stamp after a comment edit, fit nothing

Writes results/collapse/runs.csv after every set-up and summary.md after every seed; a rerun fits only
the (seed, set-up) pairs without a current row (bench/study.py), so a stopped study resumes and a new set-up is
added to the seeds already done.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from study import RunTable, add_accept_code_change, write_summary

from nfmix import MAFMixture, load_dataset, presets
from nfmix.baselines import fit_baseline
from nfmix.embedding import embedding_pipeline
from nfmix.metrics import clustering_scores
from nfmix.stats import interval, paired_test

OUT = Path(__file__).resolve().parent.parent / "results" / "collapse"
DATASET = "fmnist UMAP-10"
# The set-ups below change one thing of the preset the study first measured: the embedding preset with its
# warm-up on k-means clusters. The preset itself now warms up on the GMM's clusters (init="gmm").
BASE = dict(presets.NFMIX_EMBEDDING, init="kmeans")
WARM_UP = BASE["init_epochs"]
PRESET = 'gradient ML (preset: init="gmm")'
PICKED = "flows picked by likelihood (no labels)"
# Each set-up: MAFMixture overrides, and where the starting partition comes from (None: the estimator's own).
SETUPS = {
    PRESET: (dict(presets.NFMIX_EMBEDDING), None),
    f"gradient ML, {WARM_UP}-epoch warm-up on k-means clusters": ({}, None),
    "hard EM": (dict(algorithm="em_hard"), None),
    "gradient ML, re-seed below weight 0.05": (dict(min_weight=0.05), None),
    "gradient ML, no re-seeding": (dict(reseed=False), None),
    "gradient ML, no warm-up (the preset before this study)": (dict(init_epochs=0), None),
    f"gradient ML, {WARM_UP}-epoch warm-up on the GMM's clusters": ({}, "gmm"),
    f"hard EM, then gradient ML ({WARM_UP}-epoch warm-up on its clusters)": ({}, "hard EM"),
    "smaller flows (4 hidden units)": (dict(hidden_units=(4,)), None),
    "larger flows (2 blocks, 64 hidden units)": (dict(hidden_units=(64,), n_blocks=2), None),
}


def fit_seed(seed: int, images, y, fit_rows: int, table: RunTable) -> None:
    """Fit every set-up of one seed that ``table`` lacks (a current row), adding each row as it comes."""
    missing = [name for name in ("kmeans", "gmm", *SETUPS) if not table.has(DATASET, seed, name)]
    # A model is fitted when its row is missing, or when a missing set-up starts from its clusters.
    starts_needed = {SETUPS[name][1] for name in missing if name in SETUPS} - {None}
    to_fit = [name for name in ("kmeans", "gmm", *SETUPS) if name in missing or name in starts_needed]
    if not to_fit:
        return
    Z = embedding_pipeline(random_state=seed).fit_transform(images)
    fit = np.sort(np.random.RandomState(seed).choice(len(Z), fit_rows, replace=False))
    fit_labels = {}
    for name in to_fit:
        started = time.perf_counter()
        if name in ("kmeans", "gmm"):
            fit_labels[name], model = fit_baseline(name, Z[fit], 10, seed=seed, n_init=10)
            extra = {"nll": -model.score(Z) if name == "gmm" else np.nan}
        else:
            overrides, start = SETUPS[name]
            init = {} if start is None else {"init": fit_labels[start]}
            model = MAFMixture(10, **{**BASE, **overrides, **init}, random_state=seed).fit(Z[fit])
            fit_labels[name] = model.labels_
            extra = {
                "nll": -model.score(Z),
                "smallest weight": float(model.weights_.min()),
                "reseeds": len(model.history_["reseeds"]),
            }
        if name in missing:
            scores = clustering_scores(y, model.predict(Z), dataset=DATASET, setup=name, seed=seed)
            table.add({**scores, **extra, "seconds": time.perf_counter() - started})


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, 95% interval and components per set-up, with a paired test of each against the GMM."""
    table = table.rename(columns={"setup": "method"})
    flows = table[table["method"].isin(SETUPS)]
    flows = flows[flows.groupby("seed")["method"].transform("size") == len(SETUPS)]  # seeds with every set-up
    best = flows.loc[flows.groupby("seed")["nll"].idxmin()]
    table = pd.concat([table, best.assign(method=PICKED)], ignore_index=True)
    gmm = table[table["method"] == "gmm"].set_index("seed")
    summary = []
    for method, group in table.groupby("method", sort=False):
        group = group.set_index("seed")
        row = {"set-up": method, "n": len(group)}
        for metric in ("ari", "nmi", "accuracy"):
            low, high = interval(group[metric])
            row[metric] = (
                f"{group[metric].mean():.3f} [{low:.3f}, {high:.3f}]"
                if len(group) > 1
                else f"{group[metric].mean():.3f}"
            )
            paired = group.index.intersection(gmm.index)  # a seed still in progress may lack one side
            if method != "gmm" and len(paired):
                row[f"{metric} vs GMM, p"] = round(paired_test(group.loc[paired, metric], gmm.loc[paired, metric]), 3)
        row.update(
            {
                "components used": "/".join(str(n) for n in group["n_clusters"]),
                "NLL on 70,000": round(group["nll"].mean(), 3),
                "seconds": round(group["seconds"].mean()),
            }
        )
        if method == PICKED:
            row["picked set-up per seed"] = "; ".join(
                f"{seed}: {name}" for seed, name in zip(best["seed"], best["method"])
            )
        summary.append(row)
    return pd.DataFrame(summary).fillna("")


def write(table: RunTable, fit_rows: int) -> None:
    frame = table.frame
    seeds = sorted(int(seed) for seed in frame["seed"].unique())
    write_summary(
        table.path.parent,
        f"F-MNIST, UMAP-10 embedding (nfmix.embedding defaults, one embedding per seed), each model fitted on "
        f"{fit_rows} random images and scored on all 70,000; seeds {seeds}. Mean [95% Student-t interval] over "
        f"seeds; p: two-sided Wilcoxon signed-rank, paired by seed, against the GMM (with n = {len(seeds)} the "
        f"smallest possible p is {2 / 2 ** len(seeds):.3g}). Components used: clusters with at least one of the "
        f"70,000 points, per seed. {table.freshness()}",
        summarise(frame),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # "--seeds" alone fits nothing: with --accept-code-change it only re-stamps the rows and rewrites the summary
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--fit-rows", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=OUT)
    add_accept_code_change(parser)
    args = parser.parse_args(argv)
    table = RunTable(args.out, accept_code_change=args.accept_code_change)
    if args.seeds:
        images, y = load_dataset("fmnist")
        for seed in args.seeds:
            fit_seed(seed, images, y, args.fit_rows, table)
            write(table, args.fit_rows)
    elif len(table.frame):
        write(table, args.fit_rows)
    table.report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
