"""Held-out density: is a mixture of flows ever worse than the Gaussian mixture it generalises? (issue: GMM-nested)

    python bench/density_study.py [--seeds 0 1 2 3 4 5] [--sets iris moons ...] [--images]

Each seed splits every set 70/30 (train/test, by the seed). ``GaussianMixture(k, n_init=10)`` (full covariances)
and the nfmix set-ups below train on the 70%; the table reports the mean log-likelihood per point on the 30% and
the test ARI, with a Wilcoxon test paired by seed against the GMM. The sets are the defaults study's eleven
(``bench/defaults_study.py``) and digits, dequantised (``dequantised``); ``--images`` adds F-MNIST PCA-100 and
the 10-D UMAP embedding of F-MNIST (10,000 images, and all 70,000) when the data are on the machine; on those
a plain run fits the GMM and ``MAFMixture.density``'s set-up only (``IMAGE_SETUPS``), and ``--setups`` any other.

Writes results/density/runs.csv after every fit and summary.md at the end; a rerun fits only the
(set, seed, set-up) triples missing from the csv, so a stopped study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from defaults_study import datasets as low_dimensional_sets
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from study import RunTable, add_accept_code_change, paired_summary, write_summary

from nfmix import MAFMixture, load_dataset, presets

OUT = Path(__file__).resolve().parent.parent / "results" / "density"
GMM = "GMM (n_init=10)"
DIGITS = "digits (dequantised)"
IMAGE_SETS = ("fmnist PCA-100 (10,000)", "fmnist UMAP-10 (10,000)", "fmnist UMAP-10 (70,000)")
EARLY = dict(n_iter_no_change=20)  # 20 checks: 100 epochs of hard EM (an E-step every 5) without a better score
# On top of the constructor's defaults (k-means starts, hard EM, 10 restarts, 2000 epochs); "diag" is them.
SETUPS = {
    "diag": dict(base="diag", n_iter_no_change=None),
    "diag, early stopping": dict(base="diag", **EARLY),
    "gmm": dict(base="gmm", n_iter_no_change=None),
    "gmm, early stopping": dict(base="gmm", **EARLY),
    "gmm, gradient ML, early stopping": dict(base="gmm", algorithm="mle", check_every=10, **EARLY),
    # Whether the GMM's means and whitening should train too (the prototype diverged when they did at 1e-3).
    "gmm, early stopping, trained bases": dict(base="gmm", trainable_base=True, **EARLY),
    # The density preset as it is today (30% held out, 60 checks' patience), under its own name so that its rows
    # follow it: "gmm, early stopping" above was the preset before this study moved it.
    "MAFMixture.density": presets.NFMIX_DENSITY,
}
# What a plain run (and `make results`) fits; the trained bases' rows come only from `--setups "gmm, early stopping,
# trained bases"`, since that set-up was measured and not taken (docs/studies/density.md).
MAIN_SETUPS = [setup for setup in SETUPS if "trained bases" not in setup]
# On the image sets a plain run fits only the density preset against the GMM: each flows fit there takes many
# minutes on a 2-core CPU (the seconds column), and the study's question is whether that preset ever loses.
IMAGE_SETUPS = [GMM, "MAFMixture.density"]


def dequantised(X, seed: int):
    """Integer pixels (digits: 0 to 16) plus uniform noise in [0, 1), drawn by the seed: the standard way to
    score a continuous density on discrete data. On the integers themselves a density is unbounded (a component
    can shrink onto a pixel that is always 0), so held-out log-likelihoods would measure how hard each model
    spikes, not how well it fits; the noisy copy bounds them, and its log-likelihood is a lower bound on the
    log-probability of the integers."""
    return np.asarray(X, np.float64) + np.random.RandomState(seed).uniform(size=np.shape(X))


def image_sets(seed: int, names=IMAGE_SETS) -> dict:
    """Of F-MNIST PCA-100 (10,000 images) and its 10-D UMAP embedding (10,000 and 70,000), those in ``names``,
    where the data exist; the embedding (minutes for 70,000 images) only when a UMAP set is asked for."""
    from nfmix.embedding import embedding_pipeline

    try:
        images, y = load_dataset("fmnist")
    except (FileNotFoundError, OSError) as error:
        print(f"F-MNIST not run here: {error}")
        return {}
    subset = np.sort(np.random.RandomState(seed).choice(len(images), 10_000, replace=False))
    sets = {}
    if "fmnist PCA-100 (10,000)" in names:
        pca, _ = load_dataset("fmnist", pca=100, subsample=10_000, seed=seed)  # the same 10,000 images
        sets["fmnist PCA-100 (10,000)"] = (pca, y[subset])
    if any(name.startswith("fmnist UMAP") for name in names):
        embedded = embedding_pipeline(random_state=seed).fit_transform(images)
        sets["fmnist UMAP-10 (10,000)"] = (embedded[subset], y[subset])
        sets["fmnist UMAP-10 (70,000)"] = (embedded, y)
    return sets


def evaluate(model, X_test, y_test) -> dict:
    """Test mean log-likelihood and ARI; a test point with zero density gives -inf and no ARI, said so."""
    log_density = model.score_samples(X_test)
    try:
        ari = adjusted_rand_score(y_test, model.predict(X_test))
    except ValueError:  # a test point beyond every component's reach
        ari = np.nan
    return {"test loglik": float(log_density.mean()), "test ari": ari}


def fit_one(setup: str, k: int, X_train, seed: int):
    if setup == GMM:
        return GaussianMixture(k, n_init=10, random_state=seed).fit(X_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recorded below as numbers; the study is about the numbers
        return MAFMixture(k, random_state=seed, **SETUPS[setup]).fit(X_train)


def run(seeds, names, images: bool, table: RunTable, setups, image_setups) -> None:
    for seed in seeds:
        sets = {name: data for name, data in low_dimensional_sets(seed).items() if not names or name in names}
        if not names or DIGITS in names:
            digits, labels = load_dataset("digits")
            sets[DIGITS] = dequantised(digits, seed), labels
        for name, (X, y) in sets.items():
            for setup in setups:
                if not table.has(name, seed, setup):
                    _fit_and_record(table, name, X, y, seed, setup)
        if images:
            image_data = None
            for name in IMAGE_SETS:
                if names and name not in names:
                    continue
                for setup in image_setups:
                    if table.has(name, seed, setup):
                        continue
                    if image_data is None:
                        image_data = image_sets(seed, [name for name in IMAGE_SETS if not names or name in names])
                    if name in image_data:
                        _fit_and_record(table, name, *image_data[name], seed, setup)


def _fit_and_record(table: RunTable, name, X, y, seed, setup) -> None:
    X = np.asarray(X, np.float32)
    X_train, X_test, _, y_test = train_test_split(X, y, test_size=0.3, random_state=seed)
    started = time.perf_counter()
    model = fit_one(setup, len(np.unique(y)), X_train, seed)
    table.add(
        {
            "dataset": name,
            "seed": seed,
            "setup": setup,
            **evaluate(model, X_test, y_test),
            "seconds": time.perf_counter() - started,
            "epochs": getattr(model, "n_iter_", np.nan),
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Six seeds: the fewest with which a two-sided Wilcoxon test can reach p < 0.05 (all six agreeing: 0.031).
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument(
        "--sets",
        nargs="*",
        default=[],
        help=f"only these sets (default: the 11 low-dimensional sets and {DIGITS!r}; with --images, those too)",
    )
    parser.add_argument("--images", action="store_true", help="add F-MNIST PCA-100 and the UMAP embedding")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--setups",
        nargs="*",
        default=[],
        help=f"only these set-ups (default: {GMM!r} and every set-up but the trained bases; on the image sets "
        f"{' and '.join(map(repr, IMAGE_SETUPS))})",
    )
    add_accept_code_change(parser)
    args = parser.parse_args(argv)
    table = RunTable(args.out, accept_code_change=args.accept_code_change)
    run(args.seeds, args.sets, args.images, table, args.setups or [GMM, *MAIN_SETUPS], args.setups or IMAGE_SETUPS)
    write_summary(
        args.out,
        "Held-out mean log-likelihood per point (70/30 split per seed), mean ± sd over n "
        "seeds, and test ARI; p: Wilcoxon signed-rank, paired by seed, against the GMM." + " " + table.freshness(),
        paired_summary(table.frame, GMM, {"test loglik": "test loglik", "test ari": "test ARI"}, versus="GMM"),
    )
    table.report()


if __name__ == "__main__":
    main()
