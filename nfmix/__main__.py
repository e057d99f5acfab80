"""The main job: fit a mixture of flows to a shipped 2D set, then write its figures and metrics.

python -m nfmix --dataset two_banana --out outputs/two_banana
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

# matplotlib's backend is chosen before pyplot is imported (E402 is off for this file in pyproject.toml)
import matplotlib.pyplot as plt
import pandas as pd

from nfmix import plots, presets
from nfmix._quiet import load_tensorflow_quietly
from nfmix.baselines import run_baselines
from nfmix.data import TOY_DATASETS, load_dataset
from nfmix.metrics import clustering_scores
from nfmix.model import MAFMixture
from nfmix.presets import PRESETS


def _whole_number(least: int):
    """An argparse type: an integer no smaller than ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


# What main writes into --out, each checked before the fit.
OUTPUTS = ("density.png", "density.gif", "metrics.json", "metrics.csv")


def _writable_folder(out: Path) -> str | None:
    """Why ``out`` cannot hold the results, or None: checked before the fit, not after it."""
    if out.exists() and not out.is_dir():
        return f"{out} exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot create {out}: {error.strerror}"
    if not os.access(out, os.W_OK | os.X_OK):
        return f"{out} is not writable"
    for name in OUTPUTS:
        if (out / name).exists() and not (out / name).is_file():
            return f"{out / name} exists and is not a file, so the {name} this writes cannot replace it"
    return None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m nfmix", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="two_banana", choices=list(TOY_DATASETS))
    parser.add_argument("--preset", default="nfmix", choices=list(PRESETS), help="'paper' or nfmix's tuned set-up")
    # 0 would mean "the preset's" deeper down, so refuse it here rather than run 2000 epochs
    parser.add_argument("--epochs", type=_whole_number(1), default=None, help="override the preset's epochs")
    parser.add_argument("--seed", type=_whole_number(0), default=0)
    parser.add_argument("--out", default="outputs/main", help="folder for the figures and metrics")
    args = parser.parse_args(argv)
    problem = _writable_folder(Path(args.out))
    if problem:
        parser.error(f"--out: {problem}")

    load_tensorflow_quietly()  # after the arguments are checked: a bad one costs no TensorFlow start-up
    X, y = load_dataset(args.dataset)
    n_clusters = len(set(y.tolist()))
    settings = presets.settings(args.preset, "2d", epochs=args.epochs, random_state=args.seed, verbose=1)
    print(f"fitting a mixture of {n_clusters} MAFs to {args.dataset} ({X.shape[0]} points), preset {args.preset!r}")
    recorder = plots.DensityRecorder(X, every=max(settings["epochs"] // 20, 1))
    started = time.perf_counter()
    model = MAFMixture(n_clusters, **settings).fit(X, callback=recorder, callback_every=recorder.every)
    seconds = time.perf_counter() - started
    labels = model.predict(X)

    rows = [clustering_scores(y, labels, dataset=args.dataset, method=f"maf_mixture ({args.preset})", seed=args.seed)]
    rows[0].update(seconds=seconds, loss=-model.score(X))
    rows += run_baselines(X, y, seed=args.seed, dataset=args.dataset)[1]
    table = pd.DataFrame(rows)[["method", "purity", "ari", "nmi", "accuracy", "seconds"]]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    density_png, density_gif, metrics_json, metrics_csv = (out / name for name in OUTPUTS)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    plots.plot_density(model.score_samples, X, ax=axes[0], title=f"{args.dataset}: learned density")
    plots.plot_points(X, labels, ax=axes[1], title="clusters (most probable component)")
    plots.plot_loss(model.history_["loss"], ax=axes[2], per_restart=model.history_["loss_per_restart"])
    plots.savefig(fig, density_png.name, out)
    recorder.save_gif(density_gif)
    metrics_json.write_text(json.dumps(rows, indent=1))
    table.to_csv(metrics_csv, index=False)
    print(table.to_string(index=False, float_format="%.3f"))
    print(f"wrote {density_png}, {density_gif} and {metrics_json}")
    return rows[0]


if __name__ == "__main__":
    main()
