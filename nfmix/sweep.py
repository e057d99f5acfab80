"""Batch runs: execute notebooks over a parameter grid with papermill, resumably and in parallel.

    python -m nfmix.sweep sweeps/toy.yaml --jobs 2            # run what is missing, then aggregate
    python -m nfmix.sweep sweeps/toy.yaml --dry-run           # list the runs and their state
    python -m nfmix.sweep sweeps/toy.yaml --retry-failed      # rerun only the runs that failed
    python -m nfmix.sweep sweeps/toy.yaml --dask [ADDRESS]    # through a Dask cluster (local if no address)
    python -m nfmix.sweep sweeps/toy.yaml --set epochs=20     # override a parameter of every run

A sweep file names experiments, each a notebook, a ``grid`` (every combination is one run) and fixed
``parameters``. Run ``R`` of sweep ``S`` executes into ``results/S/runs/R.ipynb`` and writes its metrics to
``results/S/runs/R/metrics.json`` (atomically: the file exists only if the run finished). A failed run
leaves ``R.failed`` with its error and notebook path. Finished runs are skipped, so a killed sweep resumes
where it stopped. Finally every ``metrics.json`` is gathered into ``runs.csv`` (tidy: one row per run and
method), and ``summary.md`` / ``summary.csv`` give mean ± std over seeds and the best-likelihood run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import yaml
from tqdm.auto import tqdm

from nfmix.data import variant_name
from nfmix.records import METRICS_FILE, write_json_atomic

REPO = Path(__file__).resolve().parent.parent
METRICS = ["purity", "ari", "nmi", "accuracy"]


# ---------------------------------------------------------------------------------------------- planning
def load_sweep(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} not found")
    sweep = yaml.safe_load(path.read_text())
    if not isinstance(sweep, dict) or "experiments" not in sweep:
        raise ValueError(f"{path}: a sweep needs an 'experiments' list (each with notebook, grid, parameters)")
    sweep.setdefault("name", path.stem)
    return sweep


def _run_id(notebook: str, parameters: dict, grid_keys: list[str]) -> str:
    parts = [Path(notebook).stem] + [f"{k}={parameters[k]}" for k in grid_keys]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "-", "__".join(parts))


def plan(sweep: dict, results_dir, overrides: dict | None = None) -> list[dict]:
    """Every run of the sweep: its id, notebook, parameters and where its outputs go."""
    runs_dir = Path(results_dir) / sweep["name"] / "runs"
    runs = []
    for experiment in sweep["experiments"]:
        notebook = REPO / "notebooks" / f"{Path(experiment['notebook']).stem}.ipynb"
        grid = experiment.get("grid", {})
        keys = list(grid)
        for values in itertools.product(*(v if isinstance(v, list) else [v] for v in grid.values())):
            parameters = {**experiment.get("parameters", {}), **dict(zip(keys, values)), **(overrides or {})}
            run_id = _run_id(notebook.name, parameters, keys)
            parameters["out_dir"] = str((runs_dir / run_id).resolve())
            runs.append({"id": run_id, "notebook": str(notebook), "parameters": parameters,
                         "output": str(runs_dir / f"{run_id}.ipynb"), "out_dir": parameters["out_dir"]})
    ids = [r["id"] for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("two runs of this sweep have the same id: give each experiment a distinct grid")
    return runs


def check_parameters(runs: list[dict]) -> None:
    """Refuse, before anything runs, a parameter that a notebook's ``parameters`` cell does not declare."""
    import papermill

    declared = {}
    for run in runs:
        notebook = run["notebook"]
        if notebook not in declared:
            if not Path(notebook).is_file():
                raise FileNotFoundError(f"notebook {notebook} not found")
            declared[notebook] = set(papermill.inspect_notebook(notebook))
        unknown = sorted(set(run["parameters"]) - declared[notebook])
        if unknown:
            raise ValueError(f"{Path(notebook).name} has no parameter {', '.join(map(repr, unknown))}; "
                             f"its parameters are: {', '.join(sorted(declared[notebook]))}")


def state(run: dict) -> str:
    if (Path(run["out_dir"]) / METRICS_FILE).is_file():
        return "done"
    if Path(run["output"]).with_suffix(".failed").is_file():
        return "failed"
    return "missing"


# ---------------------------------------------------------------------------------------------- running
def execute_run(run: dict) -> dict:
    """Execute one run's notebook; never raises: a failure is written next to it and returned."""
    import papermill

    failed_marker = Path(run["output"]).with_suffix(".failed")
    Path(run["output"]).parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(run["notebook"], run["output"], parameters=run["parameters"],
                                   cwd=str(REPO / "notebooks"), kernel_name="python3", progress_bar=False)
        if not (Path(run["out_dir"]) / METRICS_FILE).is_file():
            raise RuntimeError(f"the notebook finished but wrote no {METRICS_FILE}")
        failed_marker.unlink(missing_ok=True)
        return {"id": run["id"], "status": "done"}
    except Exception as error:  # noqa: BLE001 - a failed run is reported, never stops the sweep
        message = str(error).strip().splitlines()
        report = {"id": run["id"], "status": "failed", "notebook": run["output"],
                  "error": "\n".join(message[-15:])}
        write_json_atomic(failed_marker, report)
        return report


def _local(runs, jobs):
    if jobs <= 1:
        for run in runs:
            yield execute_run(run)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(execute_run, run) for run in runs]):
            yield future.result()


def _dask(runs, address, jobs):
    """The same runs as tasks of a Dask ``distributed`` cluster: the one at ``address``, else a local one."""
    from dask.distributed import Client, LocalCluster, as_completed as dask_completed

    cluster = None if address else LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                dashboard_address=None)
    with Client(address or cluster) as client:
        futures = [client.submit(execute_run, run, key=f"nfmix-run-{run['id']}", pure=False) for run in runs]
        for future in dask_completed(futures):
            yield future.result()
    if cluster is not None:
        cluster.close()


def run_sweep(path, results_dir=REPO / "results", jobs: int = 1, retry_failed: bool = False,
              dry_run: bool = False, dask: str | None = None, overrides: dict | None = None) -> dict:
    """Plan, check, run what is missing (or only the failed), aggregate; returns counts and the failures."""
    sweep = load_sweep(path)
    runs = plan(sweep, results_dir, overrides)
    check_parameters(runs)
    states = {run["id"]: state(run) for run in runs}
    todo = [r for r in runs if states[r["id"]] == ("failed" if retry_failed else "missing")]
    counts = {s: sum(v == s for v in states.values()) for s in ("done", "failed", "missing")}
    print(f"sweep {sweep['name']}: {len(runs)} runs ({counts['done']} done, {counts['failed']} failed, "
          f"{counts['missing']} missing); running {len(todo)}")
    if dry_run:
        for run in runs:
            marker = "run " if run in todo else "skip"
            print(f"  {marker} [{states[run['id']]:7}] {run['id']}")
        return {"planned": len(todo), "ran": 0, "failures": []}
    outcomes = _dask(todo, dask, jobs) if dask is not None else _local(todo, jobs)
    failures = []
    for outcome in tqdm(outcomes, total=len(todo), desc=f"sweep {sweep['name']}", unit="run"):
        if outcome["status"] == "failed":
            failures.append(outcome)
            tqdm.write(f"FAILED {outcome['id']}: see {outcome['notebook']}\n  {outcome['error'].splitlines()[-1]}")
    table = aggregate(runs, Path(results_dir) / sweep["name"])
    if failures:
        print(f"{len(failures)} run(s) failed; fix them, then: python -m nfmix.sweep {path} --retry-failed")
    return {"planned": len(todo), "ran": len(todo), "failures": failures, "table": table}


# ---------------------------------------------------------------------------------------------- results
def collect(runs: list[dict]) -> pd.DataFrame:
    """One tidy row per (finished run, method): parameters, metrics, loss and timings."""
    rows = []
    for run in runs:
        metrics = Path(run["out_dir"]) / METRICS_FILE
        if metrics.is_file():
            rows += [{"run": run["id"], **row} for row in json.loads(metrics.read_text())]
    return pd.DataFrame(rows)


def with_variant(tidy: pd.DataFrame) -> pd.DataFrame:
    """A copy with ``pca`` filled (0 for raw data) and a ``variant`` column named by :func:`variant_name`."""
    tidy = tidy.copy()
    tidy["pca"] = tidy.get("pca", pd.Series(0, index=tidy.index)).fillna(0).astype(int)
    tidy["variant"] = [variant_name(d, p) for d, p in zip(tidy["dataset"], tidy["pca"])]
    return tidy


def summarise(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per dataset variant and method, and the metrics of the best-likelihood run."""
    if tidy.empty:
        return pd.DataFrame()
    tidy = with_variant(tidy)
    keys = ["variant", "method"]
    stats = tidy.groupby(keys)[METRICS].agg(["mean", "std"])
    summary = pd.DataFrame(index=stats.index)
    summary["runs"] = tidy.groupby(keys).size()
    for metric in METRICS:
        summary[metric] = [f"{m:.3f} ± {0 if pd.isna(s) else s:.3f}" for m, s in stats[metric].values]
    if "loss" in tidy:
        with_loss = tidy.dropna(subset=["loss"])
        best = with_loss.loc[with_loss.groupby(keys)["loss"].idxmin()].set_index(keys)
        for metric in ("ari", "accuracy"):
            summary[f"best-likelihood {metric}"] = best[metric].reindex(summary.index).map(
                lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return summary.reset_index()


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs the optional ``tabulate``)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


FIGURES = ("density.gif", "final.png", "gmm_vs_flows.png", "contingency.png", "samples.png")


def export_figures(runs: list[dict], tidy: pd.DataFrame, sweep_dir: Path) -> list[Path]:
    """Copy the figures of each (variant, flow set-up)'s best-likelihood run into ``figures/``, named for it."""
    import shutil

    flows = tidy[tidy["method"].str.startswith("maf") & tidy["loss"].notna()] if "loss" in tidy else tidy.iloc[:0]
    if flows.empty:
        return []
    flows = with_variant(flows)
    out_dirs = {run["id"]: Path(run["out_dir"]) for run in runs}
    written = []
    for (variant, method), group in flows.groupby(["variant", "method"]):
        best = group.loc[group["loss"].idxmin(), "run"]
        setup = method.split("(")[-1].rstrip(")")
        for name in FIGURES:
            source = out_dirs[best] / name
            if source.is_file():
                target = sweep_dir / "figures" / f"{variant}_{setup}_{name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                written.append(target)
    return written


def aggregate(runs: list[dict], sweep_dir: Path) -> pd.DataFrame:
    tidy = collect(runs)
    export_figures(runs, tidy, sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tidy.to_csv(sweep_dir / "runs.csv", index=False)
    summary = summarise(tidy)
    summary.to_csv(sweep_dir / "summary.csv", index=False)
    markdown = markdown_table(summary) if not summary.empty else "(no finished runs)"
    (sweep_dir / "summary.md").write_text(markdown + "\n")
    print(markdown)
    return summary


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set takes name=value; got {pair!r}")
        name, value = pair.split("=", 1)
        overrides[name] = yaml.safe_load(value)
    return overrides


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfmix.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a sweep file, e.g. sweeps/toy.yaml")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (worker processes)")
    parser.add_argument("--results", default=str(REPO / "results"), help="results folder")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    parser.add_argument("--retry-failed", action="store_true", help="rerun only the runs that failed")
    parser.add_argument("--dask", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run through a Dask distributed cluster: a local one, or the scheduler at ADDRESS")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override a parameter of every run")
    args = parser.parse_args(argv)
    outcome = run_sweep(args.sweep, args.results, jobs=args.jobs, retry_failed=args.retry_failed,
                        dry_run=args.dry_run, dask=args.dask, overrides=_parse_overrides(args.set))
    return 1 if outcome["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
