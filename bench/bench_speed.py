"""Speed and memory of nfmix, measured side by side with the original formulation in one run.

    python bench/bench_speed.py            # everything (about 6 minutes on 2 CPU cores)
    python bench/bench_speed.py --quick    # fewer epochs and batches, no memory run

Prints a Markdown table of the results and, after a full run (neither --quick nor --skip), writes it to
bench/latest.md, which the site's performance page shows. It runs unchanged on a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from nfmix import MAFMixture, load_dataset
from nfmix._tf import tf
from nfmix.data import TOY_DATASETS
from nfmix.flows import MixtureSpec
from nfmix.initialise import initial_values
from nfmix.presets import PAPER_2D, PAPER_IMAGES
from nfmix.reference import original_mixture, train_step_fn
from nfmix.train import Trainer

HERE = Path(__file__).resolve().parent
rows: list[tuple[str, str, str]] = []


def report(what: str, value: str, target: str = "") -> None:
    rows.append((what, value, target))
    print(f"{what}: {value}  {target}", flush=True)


def seconds_per_call(fn, calls: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def nfmix_seconds_per_epoch(X, K, hidden, n_init, epochs, batch_size, jit=True) -> float:
    """Training time per epoch of nfmix's compiled loop, steady state (one untimed chunk of the same length first)."""
    spec = MixtureSpec(n_init, K, X.shape[1], tuple(hidden))
    start = initial_values(spec, X, "kmeans", 0.1, np.random.RandomState(0))
    trainer = Trainer(spec, start, 1e-3, batch_size, jit_compile=jit)
    X_tensor = tf.constant(X)
    trainer.run_epochs(X_tensor, epochs, seed=0)
    started = time.perf_counter()
    trainer.run_epochs(X_tensor, epochs, seed=1)
    return (time.perf_counter() - started) / epochs


def fit_seconds(X, K, n_init, epochs) -> float:
    """Wall time of one whole ``MAFMixture.fit`` with the paper's 2D set-up (start and final scoring included)."""
    started = time.perf_counter()
    MAFMixture(K, **{**PAPER_2D, "n_init": n_init, "epochs": epochs, "random_state": 0}).fit(X)
    return time.perf_counter() - started


def bench_2d(quick: bool) -> float:
    X, _ = load_dataset("moons")
    K, hidden = 2, PAPER_2D["hidden_units"]
    batch = tf.constant(X)
    eager = train_step_fn(original_mixture(K, 2, hidden), compiled=False)
    compiled = train_step_fn(original_mixture(K, 2, hidden), compiled=True)
    t_eager = seconds_per_call(lambda: eager(batch), 10 if quick else 40)
    t_compiled = seconds_per_call(lambda: compiled(batch), 100 if quick else 400)
    epochs = 500 if quick else PAPER_2D["epochs"]
    # The first fit of a configuration in a process traces and XLA-compiles its loop; later ones reuse it.
    fits = {(r, when): fit_seconds(X, K, r, epochs) for r in (1, 10) for when in ("first", "again")}
    t_one = nfmix_seconds_per_epoch(X, K, hidden, 1, epochs, 4000)
    t_ten = nfmix_seconds_per_epoch(X, K, hidden, 10, epochs, 4000)
    fit_eager = t_eager * epochs
    report(
        f"2D fit (moons, K=2, H=10, {epochs} full-batch epochs), original eager loop, estimated as "
        f"{epochs} x one timed epoch",
        f"{fit_eager:.1f} s",
    )
    report(
        "2D fit, nfmix, 1 restart, first of its configuration in the process (tracing and XLA compile included)",
        f"{fits[1, 'first']:.2f} s",
    )
    report("2D fit, nfmix, 1 restart, again (compiled loop reused)", f"{fits[1, 'again']:.2f} s")
    report(
        "speed-up per fit over the eager original: first fit", f"{fit_eager / fits[1, 'first']:.0f}x", "target >= 100x"
    )
    report(
        "speed-up per fit over the eager original: later fits", f"{fit_eager / fits[1, 'again']:.0f}x", "target >= 100x"
    )
    report("2D epoch, original formulation, eager (paper)", f"{t_eager * 1e3:.2f} ms")
    report("2D epoch, original formulation, tf.function", f"{t_compiled * 1e3:.2f} ms")
    report("2D epoch, nfmix, 1 restart (steady state)", f"{t_one * 1e3:.3f} ms")
    report("2D epoch, nfmix, 10 restarts side by side (steady state)", f"{t_ten * 1e3:.3f} ms")
    report("speed-up per epoch over the eager original", f"{t_eager / t_one:.0f}x")
    report("speed-up per epoch over the original in tf.function", f"{t_compiled / t_one:.1f}x")
    report("2D fit, nfmix, 10 restarts: first / again", f"{fits[10, 'first']:.2f} s / {fits[10, 'again']:.2f} s")
    report("cost of 10 restarts relative to 1: per epoch", f"{t_ten / t_one:.2f}x", "target < 2x")
    report(
        "cost of 10 restarts relative to 1: per fit, first / again",
        f"{fits[10, 'first'] / fits[1, 'first']:.2f}x / {fits[10, 'again'] / fits[1, 'again']:.2f}x",
        "target < 2x",
    )
    return t_eager


def matmul_rate(n: int = 2048, repeats: int = 20) -> float:
    """The machine's float32 matmul rate (GFLOP/s) on square n x n matrices, in a compiled loop."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])

    @tf.function
    def chain(a, b):
        total = tf.zeros([n, n])
        for _ in tf.range(repeats):
            total += tf.matmul(a, b)
        return total

    chain(a, b).numpy()
    started = time.perf_counter()
    chain(a, b).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9


def step_matmuls_seconds(K, B, D, H) -> float:
    """The image step's five matmuls alone (forward x@W1, h@W2; backward dW2, dh, dW1), at its shapes."""
    x, w1 = tf.random.normal([K, B, D]), tf.random.normal([K, D, H])
    h, w2, g = tf.random.normal([K, B, H]), tf.random.normal([K, H, 2 * D]), tf.random.normal([K, B, 2 * D])

    @tf.function
    def five():
        return (
            tf.reduce_sum(tf.matmul(x, w1))
            + tf.reduce_sum(tf.matmul(h, w2))
            + tf.reduce_sum(tf.matmul(h, g, transpose_a=True))
            + tf.reduce_sum(tf.matmul(g, w2, transpose_b=True))
            + tf.reduce_sum(tf.matmul(x, h, transpose_a=True))
        )

    return seconds_per_call(lambda: five().numpy(), 10)


def bench_images(quick: bool) -> None:
    X, _ = load_dataset("fmnist", pca=100)
    K, hidden, batch_size = 10, PAPER_IMAGES["hidden_units"], PAPER_IMAGES["batch_size"]
    D, H = X.shape[1], hidden[0]
    n_batches = 8 if quick else 30
    subset = X[: n_batches * batch_size]
    t_nfmix = nfmix_seconds_per_epoch(subset, K, hidden, 1, 1 if quick else 2, batch_size) / n_batches
    original = train_step_fn(original_mixture(K, D, hidden), compiled=True)
    batch = tf.constant(X[:batch_size])
    t_original = seconds_per_call(lambda: original(batch).numpy(), 5 if quick else 15)
    # dense matmul FLOPs of one step: forward x@W1, h@W2; backward dW2, dh, dW1 (no gradient for the data)
    forward = 2 * batch_size * K * (D * H + H * 2 * D)
    flops = forward + 2 * batch_size * K * (H * 2 * D) * 2 + 2 * batch_size * K * D * H
    rate = matmul_rate()
    t_matmuls = step_matmuls_seconds(K, batch_size, D, H)
    report("image batch (F-MNIST PCA-100, K=10, H=1024, B=1000), original in tf.function", f"{t_original:.3f} s")
    report("image batch, nfmix", f"{t_nfmix:.3f} s")
    report("speed-up of nfmix over the original in tf.function", f"{t_original / t_nfmix:.2f}x", "target >= 1.5x")
    report("machine float32 matmul rate (2048^2, same run)", f"{rate:.0f} GFLOP/s")
    report(
        "nfmix training step, achieved",
        f"{flops / t_nfmix / 1e9:.0f} GFLOP/s = {flops / t_nfmix / 1e9 / rate:.0%} of the matmul rate",
        "target >= 70%",
    )
    report(
        "profile by parts: the step's five matmuls alone",
        f"{t_matmuls:.3f} s = {flops / t_matmuls / 1e9:.0f} GFLOP/s"
        f" = {flops / t_matmuls / 1e9 / rate:.0%} of the rate; the other {1 - t_matmuls / t_nfmix:.0%} of the step is"
        " elementwise work (tanh, masks, log-density, Adam)",
    )


def bench_suite(t_eager_moons: float, quick: bool) -> None:
    """The published 2D grid: 5 sets x 10 inits x 2000 epochs, each set's 10 inits side by side."""
    epochs = 200 if quick else 2000
    started = time.perf_counter()
    estimate = 0.0
    for name in TOY_DATASETS:
        X, y = load_dataset(name)
        K = len(np.unique(y))
        MAFMixture(K, **{**PAPER_2D, "n_init": 10, "epochs": epochs, "random_state": 0}).fit(X)
        eager = train_step_fn(original_mixture(K, 2, PAPER_2D["hidden_units"]), compiled=False)
        estimate += seconds_per_call(lambda: eager(tf.constant(X)), 5) * 2000 * 10
    total = time.perf_counter() - started
    scale = 2000 / epochs
    report(
        f"full 2D suite (5 sets x 10 inits x 2000 epochs){' , scaled from ' + str(epochs) if quick else ''}",
        f"{total * scale:.0f} s",
        "target < 120 s",
    )
    report("the same suite, original eager loop (estimated from 5 timed epochs per set)", f"{estimate / 60:.0f} min")


def fastest_gmm_seconds(X, K: int, repeats: int = 5) -> float:
    """``GaussianMixture(K, n_init=10)``: the fastest of ``repeats`` fits (one fit is short, and a busy machine can
    stretch a single one 2-10x)."""
    from sklearn.mixture import GaussianMixture

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        GaussianMixture(K, n_init=10, random_state=0).fit(X)
        times.append(time.perf_counter() - started)
    return min(times)


def bench_defaults_against_gmm(quick: bool) -> None:
    """Each 2D set: the default fit and ``MAFMixture.paper(k)`` against the GMM, side by side in this process, after
    a short fit of the same configuration and data size has compiled the loop; then the first fit in a fresh
    process. The ratio's target is on the median over the five sets."""
    from sklearn.metrics import adjusted_rand_score

    epochs = 200 if quick else None  # None: the constructor's own
    ratios = {"defaults": [], "racing (n_init_kept=3)": [], "paper": []}
    for name in TOY_DATASETS:
        X, y = load_dataset(name)
        K = len(np.unique(y))
        gmm = fastest_gmm_seconds(X, K)
        for setup, make in (
            ("defaults", lambda **kw: MAFMixture(K, **kw)),
            ("racing (n_init_kept=3)", lambda **kw: MAFMixture(K, n_init_kept=3, **kw)),  # an option: it cost clusters
            ("paper", lambda **kw: MAFMixture.paper(K, **kw)),
        ):
            settings = {"random_state": 0, **({"epochs": epochs} if epochs else {})}
            make(**{**settings, "epochs": 10}).fit(X)  # compiles this configuration for this data size
            started = time.perf_counter()
            model = make(**settings).fit(X)
            seconds = time.perf_counter() - started
            ratios[setup].append(seconds / gmm)
            report(
                f"{name}: {setup} fit ({model.n_iter_} epochs, {model.history_['compiled_calls']} compiled calls, "
                f"ARI {adjusted_rand_score(y, model.labels_):.3f}) against GaussianMixture({K}, n_init=10), "
                "fastest of 5",
                f"{seconds:.2f} s / {gmm:.3f} s = {seconds / gmm:.1f}x",
            )
    for setup, values in ratios.items():
        report(
            f"{setup} fit / GMM fit, median over the five 2D sets{' (' + str(epochs) + ' epochs)' if quick else ''}",
            f"{np.median(values):.1f}x (from {min(values):.1f}x to {max(values):.1f}x)",
            "target <= 10x" if setup == "defaults" else "",
        )
    script = (
        "import time; t = time.perf_counter()\n"
        "from nfmix import MAFMixture, load_dataset\n"
        "X, y = load_dataset('two_banana')\n"
        f"MAFMixture(2, random_state=0{', epochs=' + str(epochs) if epochs else ''}).fit(X)\n"
        "print(time.perf_counter() - t)\n"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    report(
        "two_banana: default fit, first in a fresh process (import, tracing and XLA compile included)",
        f"{float(out.split()[-1]):.1f} s in Python, {time.perf_counter() - started:.1f} s with interpreter start-up",
    )


def bench_memory() -> None:
    """Peak resident memory of a raw-pixel F-MNIST fit (70,000 x 784, K=10, H=1024, 1 epoch) and a prediction."""
    script = (
        "import resource, numpy as np\n"
        "from nfmix import MAFMixture, load_dataset\n"
        "from nfmix.presets import PAPER_IMAGES\n"
        # The runtime: TensorFlow and the TFP parts a fit uses (TFP loads them lazily, on first use).
        "import nfmix.fitting, nfmix._tf as t; t.tfd.MixtureSameFamily, t.tfb.MaskedAutoregressiveFlow\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "X, y = load_dataset('fmnist')\n"
        "m = MAFMixture(10, **{**PAPER_IMAGES, 'epochs': 1, 'random_state': 0}).fit(X)\n"
        "m.predict(X)\n"
        "n_params = sum(v.size for v in m.params_.values())\n"
        "print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, X.nbytes, n_params * 4)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    base_kb, peak_kb, data_bytes, model_bytes = map(int, out.split()[-4:])
    budget = 2 * (data_bytes + model_bytes)
    report(
        "raw F-MNIST fit + predict: peak RSS", f"{peak_kb / 1024:.0f} MiB (TF runtime alone {base_kb / 1024:.0f} MiB)"
    )
    report("data + model", f"{(data_bytes + model_bytes) / 2**20:.0f} MiB")
    report(
        "peak above the runtime, relative to data + model",
        f"{(peak_kb - base_kb) * 1024 / (budget / 2):.2f}x",
        "target <= 2x",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=["2d", "images", "suite", "defaults", "memory"])
    args = parser.parse_args()
    device = tf.config.list_physical_devices("GPU")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores" + (
        f", GPU {tf.config.experimental.get_device_details(device[0]).get('device_name', '')}" if device else ", no GPU"
    )
    t_eager = bench_2d(args.quick) if "2d" not in args.skip else None
    if "images" not in args.skip:
        bench_images(args.quick)
    if "suite" not in args.skip and t_eager is not None:
        bench_suite(t_eager, args.quick)
    if "defaults" not in args.skip:
        bench_defaults_against_gmm(args.quick)
    if "memory" not in args.skip and not args.quick:
        bench_memory()
    if not device:  # bench/bench_gpu.py measures these on a GPU, in one run
        for what, target in (
            ("GPU: cost of 10 restarts relative to 1", "target < 2x"),
            ("GPU: image step against the original in tf.function", ""),
            ("GPU: full F-MNIST PCA-100 fit, wall time", ""),
        ):
            report(what, "not measured: no GPU lent (bench/bench_gpu.py)", target)
    table = "\n".join(
        [
            f"Measured {date.today()} on {machine}, TensorFlow {tf.__version__}.",
            "",
            "| measurement | result | target |",
            "|---|---|---|",
        ]
        + [f"| {w} | {v} | {t} |" for w, v, t in rows]
    )
    print("\n" + table)
    if args.quick or args.skip:  # bench/latest.md (the site's performance table) keeps every row of a full run
        print("\n--quick/--skip: a partial run, so bench/latest.md is left as it was")
    else:
        (HERE / "latest.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
