"""Batch runs: execute notebooks over a parameter grid with papermill, resumably and in parallel.

    python -m nfmix.sweep sweeps/toy.yaml --jobs 2            # run what is missing, then aggregate
    python -m nfmix.sweep sweeps/toy.yaml --dry-run           # list the runs and their state
    python -m nfmix.sweep sweeps/toy.yaml --retry-failed      # rerun only the runs that failed
    python -m nfmix.sweep sweeps/toy.yaml --dask [ADDRESS]    # through a Dask cluster (local if no address)
    python -m nfmix.sweep sweeps/toy.yaml --set epochs=20     # override a parameter of every run

A sweep file names experiments, each a notebook, a ``grid`` (every combination is one run) and fixed
``parameters``. Run ``R`` of sweep ``S`` executes into ``results/S/runs/R.ipynb`` and writes its metrics to
``results/S/runs/R/metrics.json`` (atomically: the file exists only if the run finished). A failed run
leaves ``R.failed`` with its error and notebook path. Before it runs, ``R/run.json`` records its identity
(notebook and a hash of its code cells, every parameter, nfmix's version). Finished runs are skipped, so a
killed sweep resumes where it stopped; a finished run whose identity differs (a parameter or the notebook
changed, or it predates run.json) is "stale": it is rerun, and left out of the results until then. Finally
every current ``metrics.json`` is gathered into ``runs.csv`` (tidy: one row per run and method, with the nfmix
version that made it), and ``summary.md`` / ``summary.csv`` give mean ± std over seeds and the best-likelihood run.

``results/S/archive.csv``, where present, holds rows of runs made by an earlier nfmix whose folders are not on
this machine (each row names its ``nfmix`` version). They stand in for their run until it is rerun here, so a
results table can say exactly which cells rest on older code. ``--only REGEX`` runs just the matching runs.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import itertools
import json
import re
import sys
from collections import Counter
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
RUN_FILE = "run.json"
ARCHIVE_FILE = "archive.csv"


class SweepError(ValueError):
    """A sweep file, its notebooks or its parameters are wrong: found before any run starts."""


# ---------------------------------------------------------------------------------------------- planning
def load_sweep(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} not found")
    try:
        sweep = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:  # say where, without the parser's traceback
        mark, context = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        why = getattr(error, "problem", None) or str(error)
        if context:
            why += f", {error.context} started on line {context.line + 1}"
        raise SweepError(f"{path}{where}: not valid YAML ({why})") from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("experiments"), list):
        raise SweepError(f"{path}: a sweep needs an 'experiments' list (each with notebook, grid, parameters)")
    for i, experiment in enumerate(sweep["experiments"], 1):
        if not isinstance(experiment, dict) or not isinstance(experiment.get("notebook"), str):
            raise SweepError(f"{path}: experiment {i} needs a 'notebook:' (e.g. notebook: 02_toy_2d)")
    sweep.setdefault("name", path.stem)
    # The name is a folder under results/: a path ("../x", "a/b") would write elsewhere.
    if not (isinstance(sweep["name"], str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", sweep["name"])):
        raise SweepError(f"{path}: sweep name {sweep['name']!r} must be a plain folder name "
                         f"(letters, digits, '_', '-', '.'; no '/' and not starting with '.')")
    return sweep


def _code_hash(notebook: str) -> str:
    """A hash of the notebook's code cells: what it runs, not its outputs or prose."""
    if not Path(notebook).is_file():
        raise FileNotFoundError(f"notebook {notebook} not found")
    cells = json.loads(Path(notebook).read_text())["cells"]
    code = "\n# -- cell --\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def identity(run: dict) -> dict:
    """Everything that shapes a run's results (out_dir is where they go, not what they are)."""
    from nfmix import __version__

    parameters = {k: v for k, v in run["parameters"].items() if k != "out_dir"}
    return json.loads(json.dumps({"notebook": Path(run["notebook"]).name, "code": _code_hash(run["notebook"]),
                                  "parameters": parameters, "nfmix": __version__}))  # as run.json reads back


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
        raise SweepError("two runs of this sweep have the same id: give each experiment a distinct grid")
    for run in runs:
        run["identity"] = identity(run)
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
            declared[notebook] = papermill.inspect_notebook(notebook)
        unknown = sorted(set(run["parameters"]) - set(declared[notebook]))
        if unknown:
            raise SweepError(f"{Path(notebook).name} has no parameter {', '.join(map(repr, unknown))}; "
                             f"its parameters are: {', '.join(sorted(declared[notebook]))}")
        for name, value in run["parameters"].items():
            expected = _declared_type(declared[notebook][name])
            if expected and not _fits(value, expected):
                raise SweepError(f"run {run['id']}: parameter {name}={value!r} is {type(value).__name__}, "
                                 f"but {Path(notebook).name} expects {expected}")


TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _declared_type(spec: dict) -> str | None:
    """The type a notebook parameter is declared with (its annotation, else its default's); None if unknown."""
    if spec.get("inferred_type_name") in TYPES:
        return spec["inferred_type_name"]
    try:
        name = type(ast.literal_eval(spec.get("default", ""))).__name__
    except (ValueError, SyntaxError):
        return None
    return name if name in TYPES else None


def _fits(value, expected: str) -> bool:
    if isinstance(value, bool) != (expected == "bool"):  # bool is an int to Python, never to a notebook
        return False
    return isinstance(value, (int, float) if expected == "float" else TYPES[expected])


def changes(recorded: dict | None, current: dict) -> str:
    """Why a finished run no longer matches its plan, in a few words."""
    if recorded is None:
        return f"no {RUN_FILE} (made by older code)"
    said = [f"{current['notebook']} code changed"] if recorded.get("code") != current["code"] else []
    if recorded.get("nfmix") != current["nfmix"]:
        said.append(f"nfmix {recorded.get('nfmix')} -> {current['nfmix']}")
    old, new = recorded.get("parameters", {}), current["parameters"]
    for key in sorted(set(old) | set(new)):
        was, now = (repr(values[key]) if key in values else "unset" for values in (old, new))
        if was != now:
            said.append(f"{key} {was} -> {now}")
    return ", ".join(said) or "identity differs"


def recorded_identity(run: dict) -> dict | None:
    path = Path(run["out_dir"]) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def state(run: dict) -> str:
    if (Path(run["out_dir"]) / METRICS_FILE).is_file():
        return "done" if recorded_identity(run) == run["identity"] else "stale"
    if Path(run["output"]).with_suffix(".failed").is_file():
        return "failed"
    return "missing"


# ---------------------------------------------------------------------------------------------- running
def execute_run(run: dict) -> dict:
    """Execute one run's notebook; never raises: a failure is written next to it and returned."""
    import papermill

    failed_marker = Path(run["output"]).with_suffix(".failed")
    Path(run["output"]).parent.mkdir(parents=True, exist_ok=True)
    # Old metrics go first and the identity is recorded before the run, so metrics.json always matches run.json.
    (Path(run["out_dir"]) / METRICS_FILE).unlink(missing_ok=True)
    write_json_atomic(Path(run["out_dir"]) / RUN_FILE, run["identity"])
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
              dry_run: bool = False, dask: str | None = None, overrides: dict | None = None,
              only: str | None = None) -> dict:
    """Plan, check, run what is missing (or only the failed; or of those, only ids matching ``only``), aggregate;
    returns counts and the failures."""
    sweep = load_sweep(path)
    runs = plan(sweep, results_dir, overrides)
    check_parameters(runs)
    states = {run["id"]: state(run) for run in runs}
    todo = [r for r in runs if states[r["id"]] in (("failed",) if retry_failed else ("missing", "stale"))
            and (only is None or re.search(only, r["id"]))]
    counts = {s: sum(v == s for v in states.values()) for s in ("done", "stale", "failed", "missing")}
    print(f"sweep {sweep['name']}: {len(runs)} runs ({counts['done']} done, {counts['stale']} stale, "
          f"{counts['failed']} failed, {counts['missing']} missing); running {len(todo)}")
    reasons = [changes(recorded_identity(r), r["identity"]) for r in runs if states[r["id"]] == "stale"]
    for reason, n in Counter(reasons).items():
        verb = "left out of the results until rerun" if retry_failed else "to rerun"
        print(f"  {n} stale run(s) {verb}, changed since they ran: {reason}")
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
def collect(runs: list[dict], sweep_dir: Path | None = None) -> pd.DataFrame:
    """One tidy row per (finished, current run, method): parameters, metrics, loss, timings and the nfmix version;
    never stale runs. Archived rows (``sweep_dir/archive.csv``) stand in for planned runs not done here."""
    rows, done = [], set()
    for run in runs:
        if state(run) == "done":
            metrics = json.loads((Path(run["out_dir"]) / METRICS_FILE).read_text())
            version = recorded_identity(run)["nfmix"]
            rows += [{"run": run["id"], "nfmix": version, **row} for row in metrics]
            done.add(run["id"])
    archive = Path(sweep_dir or "") / ARCHIVE_FILE
    if sweep_dir is not None and archive.is_file():
        archived = pd.read_csv(archive)
        planned = {run["id"] for run in runs} - done
        rows = archived[archived["run"].isin(planned)].to_dict("records") + rows
    return pd.DataFrame(rows)


def with_variant(tidy: pd.DataFrame) -> pd.DataFrame:
    """A copy with ``pca`` filled (0 for raw data) and a ``variant`` column: a run's own where it named one
    (an embedding), else :func:`variant_name`'s."""
    tidy = tidy.copy()
    tidy["pca"] = tidy.get("pca", pd.Series(0, index=tidy.index)).fillna(0).astype(int)
    named = tidy.get("variant", pd.Series(None, index=tidy.index, dtype=object))
    tidy["variant"] = [v if isinstance(v, str) and v else variant_name(d, p)
                       for v, d, p in zip(named, tidy["dataset"], tidy["pca"])]
    return tidy


def summarise(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per dataset variant and method: n, mean ± sd [95% interval] over seeds, and the best-likelihood run."""
    from nfmix.stats import interval

    if tidy.empty:
        return pd.DataFrame()
    # A baseline is scored once per run, so once per set-up at the same seed: count each seed once.
    tidy = with_variant(tidy).drop_duplicates(subset=["variant", "method", "seed", *METRICS])
    keys = ["variant", "method"]
    groups = tidy.groupby(keys)
    summary = pd.DataFrame(index=groups.size().index)
    summary["n"] = groups.size()
    for metric in METRICS:
        cells = []
        for _, values in groups[metric]:
            mean, sd, (low, high) = values.mean(), values.std(), interval(values)
            cells.append(f"{mean:.3f}" + ("" if pd.isna(sd) else f" ± {sd:.3f}")
                         + ("" if pd.isna(low) else f" [{low:.3f}, {high:.3f}]"))
        summary[metric] = cells
    if "loss" in tidy:
        with_loss = tidy.dropna(subset=["loss"])
        best = with_loss.loc[with_loss.groupby(keys)["loss"].idxmin()].set_index(keys)
        for metric in ("ari", "accuracy"):
            summary[f"best-likelihood {metric}"] = best[metric].reindex(summary.index).map(
                lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return summary.reset_index()


def significance(tidy: pd.DataFrame, metric: str = "ari") -> pd.DataFrame:
    """Each flow set-up against the better of k-means and the GMM on every variant, paired by seed (Wilcoxon)."""
    from nfmix.stats import against_best_baseline

    if tidy.empty or "method" not in tidy:
        return pd.DataFrame()
    tidy = with_variant(tidy)
    flows = sorted(m for m in tidy["method"].unique() if m.startswith("maf"))
    tables = [against_best_baseline(tidy, m, metric=metric).rename(columns={m: "flows mean"}).assign(setup=m)
              for m in flows]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs the optional ``tabulate``)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


FIGURES = ("density.gif", "final.png", "gmm_vs_flows.png", "contingency.png", "samples.png", "embedding_clusters.png",
           "flow_density.png")


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
    tidy = collect(runs, sweep_dir)
    export_figures(runs, tidy, sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tidy.to_csv(sweep_dir / "runs.csv", index=False)
    summary = summarise(tidy)
    summary.to_csv(sweep_dir / "summary.csv", index=False)
    markdown = markdown_table(summary) if not summary.empty else "(no finished runs)"
    (sweep_dir / "summary.md").write_text(markdown + "\n")
    tests = significance(tidy)
    if not tests.empty:
        tests.to_csv(sweep_dir / "significance.csv", index=False)
        (sweep_dir / "significance.md").write_text(markdown_table(tests.round(4)) + "\n")
    print(markdown)
    return summary


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise SweepError(f"--set takes name=value; got {pair!r}")
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
    parser.add_argument("--only", metavar="REGEX", help="run only the runs whose id matches (aggregate them all)")
    parser.add_argument("--dask", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run through a Dask distributed cluster: a local one, or the scheduler at ADDRESS")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override a parameter of every run")
    args = parser.parse_args(argv)
    try:
        outcome = run_sweep(args.sweep, args.results, jobs=args.jobs, retry_failed=args.retry_failed,
                            dry_run=args.dry_run, dask=args.dask, overrides=_parse_overrides(args.set),
                            only=args.only)
    except (SweepError, FileNotFoundError) as error:  # bad input: a message, not a traceback
        parser.error(str(error))
    return 1 if outcome["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
