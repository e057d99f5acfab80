"""Why a mixture of flows splits the two circles left and right, measured (docs/studies/circles.md).

1. Likelihood of each partition. Each flow learns its own part of the data, supervised (one single-flow model per
   part), and the weights are the parts' proportions. The rings are compared with the left/right halves that
   unsupervised fitting finds, for the paper's network and a larger one.
2. Stability. Hard EM, soft EM and gradient ML start from the true rings (the flows first learn them for
   ``WARM_UP`` epochs: ``init=y``), then train on for ``epochs`` more: do they stay?
3. A graph start. ``init="spectral"`` (each restart's own k-NN spectral clustering, learnt for the first quarter
   of the epochs), beside spectral clustering alone, and with the partition held for all epochs
   (``init_epochs=epochs``: spectral clustering's partition with the flows' density on top).

    python bench/circles_study.py [--seeds 0 1 2]      # writes results/circles/runs.csv and summary.md

Resumable, seed by seed: a seed whose rows are all in runs.csv, from today's nfmix, is not fitted again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score
from study import RunTable, add_accept_code_change, write_summary

from nfmix import MAFMixture, load_dataset
from nfmix.baselines import fit_baseline

OUT = Path(__file__).resolve().parent.parent / "results" / "circles"
# Every fit is of flows (base="diag"): with base="auto", the default, a fit keeps the Gaussian mixture where it
# has the better AIC, and this study asks what the flows' likelihood prefers.
NETWORKS = {
    "paper's (H=10, 1 block)": dict(base="diag", hidden_units=(10,), n_blocks=1),
    "larger (H=64x64, 2 blocks)": dict(base="diag", hidden_units=(64, 64), n_blocks=2),
}
WARM_UP = 2000
DATASET = "circles"
FOUND, LEARNT, RINGS = (
    "found by fitting (the defaults' flows)",
    "that partition, learnt supervised",
    "true rings, learnt supervised",
)
ALGORITHMS = ("em_hard", "em_soft", "mle")
HELD = "spectral partition held for all epochs"
# Every row one seed gives, as "study | network | set-up" (RunTable's set-up key; see row()).
SETUPS = [
    *(f"1 partitions | {network} | {setup}" for network in NETWORKS for setup in (FOUND, LEARNT, RINGS)),
    *(f"2 start on the rings | {network} | {algorithm}" for network in NETWORKS for algorithm in ALGORITHMS),
    "3 graph start | spectral clustering alone",
    *(f'3 graph start | paper\'s | init="spectral", {algorithm}' for algorithm in ALGORITHMS),
    f"3 graph start | paper's | {HELD}",
]


def supervised_nll(X, parts, network, seed) -> float:
    """Mean NLL of the mixture whose flow k learnt part k alone and whose weights are the parts' proportions."""
    log_joint = []
    for k in np.unique(parts):
        flow = MAFMixture(1, **network, algorithm="mle", n_init=3, random_state=seed).fit(X[parts == k])
        log_joint.append(np.log(np.mean(parts == k)) + flow.score_samples(X))
    return float(-logsumexp(np.stack(log_joint, axis=1), axis=1).mean())


def row(study, network, setup, seed, X, y, labels=None, nll=None, model=None, **extra) -> dict:
    labels = model.labels_ if labels is None else labels
    nll = -model.score(X) if nll is None else nll
    return {
        "dataset": DATASET,
        "seed": seed,
        "setup": " | ".join(part for part in (study, network, setup) if part),
        "study": study,
        "network": network,
        "set-up": setup,
        "nll": nll,
        "ari": adjusted_rand_score(y, labels),
        **extra,
    }


def one_seed(X, y, seed) -> list[dict]:
    rows = []
    for name, network in NETWORKS.items():
        fitted = MAFMixture(2, **network, random_state=seed).fit(X)  # the defaults' training: hard EM, k-means
        halves = fitted.labels_
        rows += [
            row("1 partitions", name, FOUND, seed, X, y, model=fitted),
            row(
                "1 partitions",
                name,
                LEARNT,
                seed,
                X,
                y,
                labels=halves,
                nll=supervised_nll(X, halves, network, seed),
            ),
            row(
                "1 partitions",
                name,
                RINGS,
                seed,
                X,
                y,
                labels=y,
                nll=supervised_nll(X, y, network, seed),
            ),
        ]
        for algorithm in ALGORITHMS:
            model = MAFMixture(
                2, **network, init=y, init_epochs=WARM_UP, epochs=2 * WARM_UP, algorithm=algorithm, random_state=seed
            ).fit(X)
            rows.append(
                row(
                    "2 start on the rings",
                    name,
                    algorithm,
                    seed,
                    X,
                    y,
                    model=model,
                    nll_after_warm_up=model.history_["loss"][WARM_UP - 1],
                )
            )
    labels, _ = fit_baseline("spectral", X, 2, seed=seed)
    rows.append(row("3 graph start", "", "spectral clustering alone", seed, X, y, labels=labels, nll=np.nan))
    network = NETWORKS["paper's (H=10, 1 block)"]
    for algorithm in ALGORITHMS:
        model = MAFMixture(2, **network, init="spectral", algorithm=algorithm, random_state=seed).fit(X)
        rows.append(row("3 graph start", "paper's", f'init="spectral", {algorithm}', seed, X, y, model=model))
    held = MAFMixture(2, **network, init="spectral", init_epochs=2000, epochs=2000, random_state=seed).fit(X)
    rows.append(row("3 graph start", "paper's", HELD, seed, X, y, model=held))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    add_accept_code_change(parser)
    args = parser.parse_args(argv)
    X, y = load_dataset("circles")
    table = RunTable(args.out, accept_code_change=args.accept_code_change)
    for seed in args.seeds:
        # A seed's set-ups share fits (each partition is learnt from the one the defaults found), so a seed is
        # fitted whole unless every one of its rows is current.
        if all(table.has(DATASET, seed, setup) for setup in SETUPS):
            continue
        started = time.perf_counter()
        for fitted in one_seed(X, y, seed):
            table.add(fitted)
        print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    write(table, len(X))
    table.report()
    return 0


def write(table: RunTable, n_points: int) -> None:
    summary = (
        table.frame.groupby(["study", "network", "set-up"], sort=False, dropna=False)
        .agg(
            n=("seed", "size"),
            nll=("nll", "mean"),
            nll_sd=("nll", "std"),
            ari=("ari", "mean"),
            ari_min=("ari", "min"),
            ari_max=("ari", "max"),
        )
        .round(3)
        .reset_index()
        .fillna("")
    )
    write_summary(
        table.path.parent,
        f"circles ({n_points} points), seeds {sorted(table.frame['seed'].unique().tolist())}: mean negative "
        f"log-likelihood per point (lower is better; nats) and ARI against the rings. {table.freshness()}",
        summary,
    )


if __name__ == "__main__":
    raise SystemExit(main())
