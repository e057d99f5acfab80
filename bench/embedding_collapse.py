"""What keeps all K flows in use in a UMAP embedding of Fashion-MNIST (issue: collapse study).

Each seed's embedding is the sweep's own (nfmix.embedding defaults, cached on disk). To fit many set-ups on this
2-core machine, every set-up trains on the same 10,000 random images of the embedding and then labels all 70,000;
k-means and the GMM are fitted the same way. Every model keeps its best-likelihood restart, and "picked by
likelihood" is the set-up with the lowest NLL on all 70,000 points: a rule that needs no labels.

    python bench/embedding_collapse.py [--seeds 0 1 2] [--fit-rows 10000]

Writes results/embedding/collapse.csv and collapse.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nfmix import MAFMixture, load_dataset, presets
from nfmix.baselines import fit_baseline
from nfmix.embedding import embedding_pipeline
from nfmix.metrics import clustering_scores
from nfmix.sweep import markdown_table

OUT = Path(__file__).resolve().parent.parent / "results" / "embedding"
BASE = presets.NFMIX_EMBEDDING
SETUPS = {
    "gradient ML (the issue's set-up)": dict(BASE, algorithm="mle"),
    "hard EM": dict(BASE, algorithm="em_hard"),
    "gradient ML, re-seed below 0.05": dict(BASE, algorithm="mle", min_weight=0.05),
    "hard EM, re-seed below 0.05": dict(BASE, algorithm="em_hard", min_weight=0.05),
    "gradient ML, no re-seeding": dict(BASE, algorithm="mle", reseed=False),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fit-rows", type=int, default=10000)
    args = parser.parse_args(argv)
    images, y = load_dataset("fmnist")
    rows = []
    for seed in args.seeds:
        Z = embedding_pipeline(random_state=seed).fit_transform(images)
        fit = np.sort(np.random.RandomState(seed).choice(len(Z), args.fit_rows, replace=False))
        for name, settings in SETUPS.items():
            started = time.perf_counter()
            model = MAFMixture(10, **settings, random_state=seed).fit(Z[fit])
            labels = model.predict(Z)
            rows.append({**clustering_scores(y, labels, method=name, seed=seed), "nll": -model.score(Z),
                         "smallest weight": float(model.weights_.min()),
                         "reseeds": len(model.history_["reseeds"]), "seconds": time.perf_counter() - started})
            print(rows[-1], flush=True)
        for method in ("kmeans", "gmm"):
            started = time.perf_counter()
            _, estimator = fit_baseline(method, Z[fit], 10, seed=seed, n_init=10)
            rows.append({**clustering_scores(y, estimator.predict(Z), method=method, seed=seed),
                         "nll": -estimator.score(Z) if method == "gmm" else np.nan,
                         "seconds": time.perf_counter() - started})
    table = pd.DataFrame(rows)
    flows = table[table["method"].isin(SETUPS)]
    picked = flows.loc[flows.groupby("seed")["nll"].idxmin()].assign(method="picked by likelihood (no labels)")
    table = pd.concat([table, picked], ignore_index=True)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "collapse.csv", index=False)
    summary = table.groupby("method", sort=False).agg(
        n=("seed", "size"), ari=("ari", "mean"), nmi=("nmi", "mean"), accuracy=("accuracy", "mean"),
        components_used=("n_clusters", "mean"), fewest_used=("n_clusters", "min"), nll=("nll", "mean"),
        seconds=("seconds", "mean")).round(3).reset_index()
    (OUT / "collapse.md").write_text(
        f"F-MNIST, UMAP-10 embedding (nfmix.embedding defaults), each model fitted on {args.fit_rows} random images "
        f"and scored on all 70,000; seeds {args.seeds}; means over seeds (n per row).\n\n"
        + markdown_table(summary) + "\n")
    print(markdown_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
