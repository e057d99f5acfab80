"""The GPU rows of the speed bench (issue 17), measured side by side in one run on the machine's first GPU.

    python bench/bench_gpu.py                              # on a GPU machine: about 5 minutes
    python bench/bench_gpu.py --data-dir /path/to/fmnist   # where the Fashion-MNIST .gz files are
    python bench/bench_gpu.py --quick                      # tiny sizes, runs on a CPU too: checks the script only

Measures (1) the cost of 10 restarts relative to one (per epoch and per fit), (2) the image step against the
original formulation compiled in ``tf.function``, and (3) a full F-MNIST PCA-100 fit's wall time. Prints a
Markdown table and, unless ``--quick``, writes it to bench/gpu_latest.md. Without a GPU it stops, unless
``--quick`` or ``--allow-cpu`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_speed import fit_seconds, nfmix_seconds_per_epoch, report, rows, seconds_per_call  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from nfmix import MAFMixture, load_dataset  # noqa: E402
from nfmix._tf import tf  # noqa: E402
from nfmix.presets import NFMIX_IMAGES, PAPER_2D, PAPER_IMAGES  # noqa: E402
from nfmix.reference import original_mixture, train_step_fn  # noqa: E402


def restarts(quick: bool) -> None:
    """10 restarts side by side against 1, on moons with the paper's 2D set-up."""
    X, _ = load_dataset("moons")
    epochs = 100 if quick else PAPER_2D["epochs"]
    fits = {(r, when): fit_seconds(X, 2, r, epochs) for r in (1, 10) for when in ("first", "again")}
    per_epoch = {r: nfmix_seconds_per_epoch(X, 2, PAPER_2D["hidden_units"], r, epochs, 4000) for r in (1, 10)}
    report(
        f"2D epoch (moons, K=2, H=10), 1 restart / 10 restarts (steady state, {epochs}-epoch runs)",
        f"{per_epoch[1] * 1e3:.3f} ms / {per_epoch[10] * 1e3:.3f} ms",
    )
    report("cost of 10 restarts relative to 1: per epoch", f"{per_epoch[10] / per_epoch[1]:.2f}x", "target < 2x")
    report(
        f"2D fit ({epochs} epochs), 1 restart: first / again", f"{fits[1, 'first']:.2f} s / {fits[1, 'again']:.2f} s"
    )
    report(
        f"2D fit ({epochs} epochs), 10 restarts: first / again",
        f"{fits[10, 'first']:.2f} s / {fits[10, 'again']:.2f} s",
    )
    report(
        "cost of 10 restarts relative to 1: per fit, first / again",
        f"{fits[10, 'first'] / fits[1, 'first']:.2f}x / {fits[10, 'again'] / fits[1, 'again']:.2f}x",
        "target < 2x",
    )


def image_step(X: np.ndarray, quick: bool) -> None:
    """One training step on a batch of 1000 F-MNIST PCA-100 images, K=10, H=1024: nfmix against the original."""
    K, hidden, batch_size = 10, PAPER_IMAGES["hidden_units"], PAPER_IMAGES["batch_size"]
    n_batches = 4 if quick else 30
    subset = X[: n_batches * batch_size]
    t_nfmix = nfmix_seconds_per_epoch(subset, K, hidden, 1, 1 if quick else 3, batch_size) / n_batches
    original = train_step_fn(original_mixture(K, X.shape[1], hidden), compiled=True)
    batch = tf.constant(X[:batch_size])
    t_original = seconds_per_call(lambda: original(batch).numpy(), 3 if quick else 30)
    report(
        f"image batch (F-MNIST PCA-{X.shape[1]}, K=10, H=1024, B=1000), original in tf.function",
        f"{t_original * 1e3:.1f} ms",
    )
    report("image batch, nfmix", f"{t_nfmix * 1e3:.1f} ms = {batch_size / t_nfmix:,.0f} images/s")
    report("speed-up of nfmix over the original in tf.function", f"{t_original / t_nfmix:.2f}x")


def full_fit(X: np.ndarray, y: np.ndarray, quick: bool) -> None:
    """Whole fits (initialisation, training, final scoring and labels) on every image, both presets."""
    for name, preset in (("paper", PAPER_IMAGES), ("nfmix", NFMIX_IMAGES)):
        settings = {**preset, "random_state": 0, **({"epochs": 1} if quick else {})}
        started = time.perf_counter()
        model = MAFMixture(10, **settings).fit(X)
        seconds = time.perf_counter() - started
        ari = adjusted_rand_score(y, model.labels_)
        report(
            f"full F-MNIST PCA-{X.shape[1]} fit ({len(X):,} images, {settings['epochs']} epochs, preset {name}: "
            f"{settings['n_init']} restart(s)), first of its configuration in the process",
            f"{seconds:.1f} s (ARI {ari:.3f})",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the script; runs on a CPU)")
    parser.add_argument("--allow-cpu", action="store_true", help="run the full sizes without a GPU")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the Fashion-MNIST files (default: nfmix's search, e.g. /usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="where to write the table (default bench/gpu_latest.md; nothing is written with --quick unless given)",
    )
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not (args.quick or args.allow_cpu):
        sys.exit("no GPU visible to TensorFlow; pass --quick (or --allow-cpu) to run on the CPU anyway")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "no GPU"
    X, y = load_dataset("fmnist", pca=100, data_dir=args.data_dir, subsample=5000 if args.quick else None)
    restarts(args.quick)
    image_step(X, args.quick)
    full_fit(X, y, args.quick)
    header = (
        f"Measured {date.today()} on {device} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores), TensorFlow {tf.__version__}{', --quick' if args.quick else ''}."
    )
    table = "\n".join(
        [header, "", "| measurement | result | target |", "|---|---|---|"]
        + [f"| {w} | {v} | {t} |" for w, v, t in rows]
    )
    print("\n" + table)
    out = args.out or (None if args.quick else HERE / "gpu_latest.md")
    if out:
        Path(out).write_text(table + "\n")


if __name__ == "__main__":
    main()
