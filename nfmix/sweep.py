"""Batch runs: execute notebooks over a parameter grid with papermill, resumably and in parallel.

    python -m nfmix.sweep sweeps/toy.yaml --jobs 2            # run what is missing, then aggregate
    python -m nfmix.sweep sweeps/toy.yaml --dry-run           # list the runs and their state
    python -m nfmix.sweep sweeps/toy.yaml --retry-failed      # rerun only the runs that failed
    python -m nfmix.sweep sweeps/toy.yaml --dask [ADDRESS]    # through a Dask cluster (local if no address)
    python -m nfmix.sweep sweeps/toy.yaml --set epochs=20     # override a parameter of every run
    python -m nfmix.sweep sweeps/toy.yaml --accept-code-change --dry-run   # keep runs that only nfmix's code made stale

A sweep file has a ``name`` (its folder under results/; the file's name if absent), an optional ``description`` and
``experiments``, each a ``notebook``, a ``grid`` (every combination is one run) and fixed ``parameters``; any other
key is refused, with its line. Run ``R`` of sweep ``S`` executes into ``results/S/runs/R.ipynb`` and writes its
metrics to ``results/S/runs/R/metrics.json`` (atomically: the file exists only if the run finished). A failed run
leaves ``R.failed`` with its error and notebook path. Before it runs, ``R/run.json`` records its identity (notebook
and a hash of its code cells, every parameter, the contents of the preset it names (its ``preset`` parameter, or the
notebook's default for it) in the kinds the notebook resolves (``presets.settings(preset, "2d")``), a hash of
every ``nfmix/*.py``, nfmix's version). Finished runs are skipped, so a killed sweep resumes where it stopped; a
finished run whose identity differs (a parameter, a preset, the notebook or nfmix's source changed, or it predates
those records) is "stale", and one whose metrics.json or run.json cannot be
read (not JSON, no rows) is "broken": both are rerun, and left out of the results until then. While a run executes
it holds a lock (``R/run.lock``), so two sweeps over one results folder never run it twice: the second skips it and
says so. Finally every current ``metrics.json`` is gathered into ``runs.csv`` (tidy: one row per run and method,
with the nfmix version that made it), and ``summary.md`` / ``summary.csv`` give mean ± std over seeds and the
best-likelihood run.

``--accept-code-change`` is for an edit of nfmix's source known not to change results (a comment, a refactor):
every finished run whose identity differs from its plan only in the source hashes gets the current hashes in
its run.json, so it counts as done again, and the edited files and the run ids go, with the UTC time, to
``results/S/accepted-code-changes.log``. A run that differs in anything else stays stale. With ``--dry-run`` it
accepts and runs nothing.

``results/S/archive.csv``, where present, holds rows of runs made by an earlier nfmix whose folders are not on
this machine (each row names its ``nfmix`` version). They stand in for their run until it is rerun here, so a
results table can say exactly which cells rest on older code. ``--only REGEX`` runs just the matching runs.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import functools
import hashlib
import itertools
import json
import os
import re
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import datetime, timezone
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
LOCK_FILE = "run.lock"
ARCHIVE_FILE = "archive.csv"
ACCEPTED_LOG = "accepted-code-changes.log"
STATES = ("done", "stale", "broken", "failed", "missing")
TOP_KEYS = ("name", "description", "experiments")
EXPERIMENT_KEYS = ("notebook", "grid", "parameters")


class SweepError(ValueError):
    """A sweep file, its notebooks or its parameters are wrong: found before any run starts."""


# ---------------------------------------------------------------------------------------------- planning
def _yaml_problem(error: yaml.YAMLError, lines: bool = True) -> str:
    """What the YAML parser objects to, in one line (and, with ``lines``, where the construct it was in began)."""
    why = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context_mark", None)
    if lines and context:
        why += f", {error.context} started on line {context.line + 1}"
    return why


def _check_keys(path: Path, mapping: yaml.MappingNode, known: tuple | None, where: str) -> None:
    """Refuse a key twice in ``mapping``, or (given ``known``) one not in ``known``: a typo such as ``grd:``
    would otherwise be ignored without a word."""
    seen = set()
    for key, _ in mapping.value:
        line, name = key.start_mark.line + 1, str(key.value)  # str: a (rare) list or mapping as a key
        if known is not None and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SweepError(f"{path}, line {line}: unknown key {name!r} {where}{hint}; known keys: {', '.join(known)}")
        if name in seen:
            raise SweepError(f"{path}, line {line}: key {name!r} appears twice {where}")
        seen.add(name)


def _check_structure(path: Path, document: yaml.Node | None) -> None:
    """Every key of the sweep, its experiments and their grids and parameters (yaml nodes carry the lines)."""
    if not isinstance(document, yaml.MappingNode):
        return  # not a mapping: load_sweep says what a sweep needs
    _check_keys(path, document, TOP_KEYS, "at the top level")
    for key, experiments in document.value:
        if key.value != "experiments" or not isinstance(experiments, yaml.SequenceNode):
            continue
        for i, experiment in enumerate(experiments.value, 1):
            if not isinstance(experiment, yaml.MappingNode):
                continue
            _check_keys(path, experiment, EXPERIMENT_KEYS, f"in experiment {i}")
            for name, values in experiment.value:
                if isinstance(values, yaml.MappingNode):
                    _check_keys(path, values, None, f"in experiment {i}'s {name.value}")


def load_sweep(path) -> dict:
    """The sweep in ``path``, checked: every key known, each experiment with a notebook, a plain name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise SweepError(f"{path}: not a text (UTF-8) file ({error.reason} at byte {error.start})") from None
    try:
        _check_structure(path, yaml.compose(text, Loader=yaml.SafeLoader))
        sweep = yaml.safe_load(text)
    except yaml.YAMLError as error:  # say where, without the parser's traceback
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise SweepError(f"{path}{where}: not valid YAML ({_yaml_problem(error)})") from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("experiments"), list):
        raise SweepError(f"{path}: a sweep needs an 'experiments' list (each with notebook, grid, parameters)")
    for i, experiment in enumerate(sweep["experiments"], 1):
        if not isinstance(experiment, dict) or not isinstance(experiment.get("notebook"), str):
            raise SweepError(f"{path}: experiment {i} needs a 'notebook:' (e.g. notebook: 02_toy_2d)")
        for key in ("grid", "parameters"):
            if key in experiment and not isinstance(experiment[key], dict):
                raise SweepError(
                    f"{path}: experiment {i}'s {key!r} must be a mapping of parameter names "
                    f"(e.g. {key}: {{seed: [0, 1]}}), not {type(experiment[key]).__name__}"
                )
    sweep.setdefault("name", path.stem)
    # The name is a folder under results/: a path ("../x", "a/b") would write elsewhere.
    if not (isinstance(sweep["name"], str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", sweep["name"])):
        raise SweepError(
            f"{path}: sweep name {sweep['name']!r} must be a plain folder name "
            f"(letters, digits, '_', '-', '.'; no '/' and not starting with '.')"
        )
    return sweep


def _code_hash(notebook: str) -> str:
    """A hash of the notebook's code cells: what it runs, not its outputs or prose."""
    return hashlib.sha256(_code_text(notebook).encode()).hexdigest()[:16]


def _code_text(notebook: str) -> str:
    """The notebook's code cells, joined."""
    if not Path(notebook).is_file():
        raise FileNotFoundError(f"notebook {notebook} not found")
    try:
        cells = json.loads(Path(notebook).read_text())["cells"]
    except (ValueError, KeyError, TypeError) as error:  # not JSON, not UTF-8, or no cells: not a notebook
        raise SweepError(f"notebook {notebook} cannot be read as a notebook ({error!r})") from None
    return "\n# -- cell --\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def source_hashes() -> dict:
    """``{file name: sha256[:16]}`` of every ``nfmix/*.py``: the package source a run executes."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted(Path(__file__).resolve().parent.glob("*.py"))
    }


def package_digest(hashes: dict | None = None) -> str:
    """One hash of every ``nfmix/*.py`` (of ``hashes``, :func:`source_hashes` by default): what a study's row
    records of the package that computed it."""
    hashes = source_hashes() if hashes is None else hashes
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]


def identity(run: dict) -> dict:
    """Everything that shapes a run's results (out_dir is where they go, not what they are): the notebook and
    its code, the parameters, the contents of the preset it uses (a run names a preset, not its values), and
    nfmix's source."""
    from nfmix import __version__

    parameters = {k: v for k, v in run["parameters"].items() if k != "out_dir"}
    code = _code_hash(run["notebook"])
    return json.loads(
        json.dumps(
            {
                "notebook": Path(run["notebook"]).name,
                "code": code,
                "parameters": parameters,
                "presets": presets_used(run["notebook"], parameters, code),
                "package": source_hashes(),
                "nfmix": __version__,
            }
        )
    )  # as run.json reads back (tuples become lists)


def presets_used(notebook, parameters: dict, code: str) -> dict:
    """``{name: {kind: settings}}`` of the preset a run's notebook (whose code cells hash to ``code``) resolves
    its flows from: the run's ``preset`` parameter, else the notebook's default for it, and of that preset the
    kinds the notebook names (every kind if it names none literally); ``{}`` for a notebook with no ``preset``
    parameter (the baselines). Its other presets and kinds cannot shape the run, so their edits leave it current.
    """
    from nfmix.presets import PRESETS

    name = parameters["preset"] if "preset" in parameters else _default_preset(str(notebook), code)
    if name is None:
        return {}
    if name not in PRESETS:
        raise SweepError(f"{Path(notebook).name}: preset {name!r} is not one of nfmix.presets: {', '.join(PRESETS)}")
    kinds = _preset_kinds(str(notebook), code)
    return {name: {kind: values for kind, values in PRESETS[name].items() if kinds is None or kind in kinds}}


PRESET_KIND = re.compile(r"presets\.settings\(\s*\w+\s*,\s*[\"'](\w+)[\"']")  # presets.settings(preset, "2d", ...)


@functools.cache
def _preset_kinds(notebook: str, code: str) -> frozenset | None:
    """The preset kinds a notebook resolves (``presets.settings(preset, "<kind>", ...)``), None if it names
    none literally (cached per version of the notebook's ``code``)."""
    return frozenset(PRESET_KIND.findall(_code_text(notebook))) or None


@functools.cache
def _default_preset(notebook: str, code: str) -> str | None:
    """The default of the ``preset`` parameter in a notebook's papermill ``parameters`` cell, as papermill reads
    it; None if there is none (cached per version of the notebook's ``code``)."""
    import papermill

    preset = papermill.inspect_notebook(notebook).get("preset")
    return None if preset is None else ast.literal_eval(preset["default"])


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
            runs.append(
                {
                    "id": run_id,
                    "notebook": str(notebook),
                    "parameters": parameters,
                    "output": str(runs_dir / f"{run_id}.ipynb"),
                    "out_dir": parameters["out_dir"],
                }
            )
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
            raise SweepError(
                f"{Path(notebook).name} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are: {', '.join(sorted(declared[notebook]))}"
            )
        for name, value in run["parameters"].items():
            expected = _declared_type(declared[notebook][name])
            if expected and not _fits(value, expected):
                raise SweepError(
                    f"run {run['id']}: parameter {name}={value!r} is {type(value).__name__}, "
                    f"but {Path(notebook).name} expects {expected}"
                )


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


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"<prefix>key was -> now"`` for every key whose value differs (``unset`` where one side lacks it)."""
    said = []
    for key in sorted(set(old) | set(new)):
        was, now = (repr(values[key]) if key in values else "unset" for values in (old, new))
        if was != now:
            said.append(f"{prefix}{key} {was} -> {now}")
    return said


def _flat_presets(presets) -> dict:
    """``{"name/kind key": value}`` of a recorded ``PRESETS``, so a change names the preset, its kind and key."""
    if not isinstance(presets, dict):
        return {}
    return {
        f"{name}/{kind} {key}": value
        for name, kinds in presets.items()
        if isinstance(kinds, dict)
        for kind, values in kinds.items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


def _presets_of(recorded: dict, current: dict) -> dict:
    """The recorded presets that ``current`` uses: an identity written when run.json held every preset, or
    every kind of one, is compared on the run's own preset and kinds alone."""
    presets = recorded.get("presets")
    if not isinstance(presets, dict):
        return {}
    used = {}
    for name, kinds in current["presets"].items():
        was = presets.get(name)
        used[name] = {kind: was.get(kind) for kind in kinds} if isinstance(was, dict) else was
    return used


def changed_sources(old, new: dict) -> list[str]:
    """The ``nfmix/*.py`` files edited, added or removed between two recorded source hashes."""
    old = old if isinstance(old, dict) else {}
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


def changes(recorded: dict | None, current: dict) -> str:
    """Why a finished run no longer matches its plan, in a few words."""
    if recorded is None:
        return f"no {RUN_FILE} (made by older code)"
    said = [] if "presets" in recorded and "package" in recorded else ["identity predates preset/source hashes"]
    if recorded.get("code") != current["code"]:
        said.append(f"{current['notebook']} code changed")
    if recorded.get("nfmix") != current["nfmix"]:
        said.append(f"nfmix {recorded.get('nfmix')} -> {current['nfmix']}")
    if "presets" in recorded:
        used = _presets_of(recorded, current)
        presets = _differences(_flat_presets(used), _flat_presets(current["presets"]), "preset ")
        said += presets[:3] + ([f"{len(presets) - 3} more preset changes"] if len(presets) > 3 else [])
    if "package" in recorded and (files := changed_sources(recorded["package"], current["package"])):
        said.append(f"nfmix source changed: {', '.join(files)}")
    said += _differences(recorded.get("parameters", {}), current["parameters"])
    return ", ".join(said) or "identity differs"


def _read_json(path: Path, kind: type):
    """``(value, None)`` for a file of JSON of type ``kind``, ``(None, None)`` for no file, else ``(None, why)``."""
    if not path.exists():
        return None, None
    try:
        value = json.loads(path.read_text())
    except IsADirectoryError:
        return None, f"{path.name} is a folder"
    except OSError as error:
        return None, f"{path.name} cannot be read ({error.strerror})"
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return None, f"{path.name} is not valid JSON"
    if not isinstance(value, kind):
        return None, f"{path.name} holds a JSON {type(value).__name__}, not a {kind.__name__}"
    return value, None


def _metrics(run: dict):
    """``(rows, None)`` of a finished run's metrics.json, ``(None, None)`` if there is none, else ``(None, why)``."""
    rows, problem = _read_json(Path(run["out_dir"]) / METRICS_FILE, list)
    if rows is not None and not (rows and all(isinstance(row, dict) for row in rows)):
        return None, f"{METRICS_FILE} holds no rows" if not rows else f"{METRICS_FILE} holds something other than rows"
    return rows, problem


def recorded_identity(run: dict):
    """``(identity, None)`` from a run's run.json, ``(None, None)`` if it has none, else ``(None, why)``."""
    return _read_json(Path(run["out_dir"]) / RUN_FILE, dict)


def inspect(run: dict) -> tuple[str, str]:
    """A run's state, one of :data:`STATES`, and why it is so where that is not plain: what changed for
    "stale", what is wrong for "broken" (a metrics.json or run.json that cannot be read is redone, never used)."""
    rows, problem = _metrics(run)
    if rows is None and problem is None:
        return ("failed" if Path(run["output"]).with_suffix(".failed").is_file() else "missing"), ""
    recorded, run_problem = recorded_identity(run)
    if problem or run_problem:
        return "broken", problem or run_problem
    if recorded != run["identity"]:
        return "stale", changes(recorded, run["identity"])
    return "done", ""


def state(run: dict) -> str:
    """A run's state: "done", "stale", "broken", "failed" or "missing" (see :func:`inspect` for why)."""
    return inspect(run)[0]


# ---------------------------------------------------------------------------------------------- running
@contextmanager
def run_lock(run: dict):
    """Hold ``out_dir/run.lock`` while the block runs; yields False, holding nothing, if another process holds it.

    An ``flock`` goes with its process, so a killed sweep leaves no lock behind (the file stays, harmless).
    """
    import fcntl

    Path(run["out_dir"]).mkdir(parents=True, exist_ok=True)
    with open(Path(run["out_dir"]) / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock


def _skipped(run: dict, why: str) -> dict:
    return {"id": run["id"], "status": "skipped", "message": f"run {run['id']} {why}; skipped"}


def _failed(run: dict, error: Exception) -> dict:
    """The failure report, also written to ``R.failed`` where that can be written."""
    message = str(error).strip().splitlines() or [type(error).__name__]
    report = {"id": run["id"], "status": "failed", "notebook": run["output"], "error": "\n".join(message[-15:])}
    try:
        write_json_atomic(Path(run["output"]).with_suffix(".failed"), report)
    except OSError as marker_error:  # the report still goes back to the sweep
        report["error"] += f"\n(and its .failed marker could not be written: {marker_error})"
    return report


def execute_run(run: dict) -> dict:
    """Execute one run's notebook, holding its lock; never raises: a failure is written next to it and returned
    (status "failed"), and a run another process is running, or has finished since it was planned, is
    "skipped" with a message saying so."""
    import papermill

    try:
        with run_lock(run) as held:
            if not held:
                return _skipped(run, "is being run by another process")
            if state(run) == "done":
                return _skipped(run, "was finished by another process")
            # Old metrics go first and the identity is recorded before the run, so metrics.json matches run.json.
            Path(run["output"]).parent.mkdir(parents=True, exist_ok=True)
            (Path(run["out_dir"]) / METRICS_FILE).unlink(missing_ok=True)
            write_json_atomic(Path(run["out_dir"]) / RUN_FILE, run["identity"])
            papermill.execute_notebook(
                run["notebook"],
                run["output"],
                parameters=run["parameters"],
                cwd=str(REPO / "notebooks"),
                kernel_name="python3",
                progress_bar=False,
            )
            if not (Path(run["out_dir"]) / METRICS_FILE).is_file():
                raise RuntimeError(f"the notebook finished but wrote no {METRICS_FILE}")
            Path(run["output"]).with_suffix(".failed").unlink(missing_ok=True)
            return {"id": run["id"], "status": "done"}
    except Exception as error:  # noqa: BLE001 - a failed run is reported, never stops the sweep
        return _failed(run, error)


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
    from dask.distributed import Client, LocalCluster
    from dask.distributed import as_completed as dask_completed

    cluster = (
        None if address else LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
    )
    with Client(address or cluster) as client:
        futures = [client.submit(execute_run, run, key=f"nfmix-run-{run['id']}", pure=False) for run in runs]
        for future in dask_completed(futures):
            yield future.result()
    if cluster is not None:
        cluster.close()


def _check_results_folder(runs_dir: Path, write: bool) -> None:
    """Refuse a results folder that is a file (or lies under one), or, when the sweep will ``write``, one that
    cannot be written: before any run starts, not once per run."""
    existing = next(p for p in (runs_dir, *runs_dir.parents) if p.exists())
    if not existing.is_dir():
        raise SweepError(f"--results: {existing} exists and is not a folder")
    if write and not os.access(existing, os.W_OK | os.X_OK):
        raise SweepError(f"--results: {existing} is not writable")


def _only(pattern: str | None):
    """``--only``'s pattern compiled, or None; a bad one is refused before anything runs."""
    try:
        return None if pattern is None else re.compile(pattern)
    except re.error as error:
        raise SweepError(f"--only {pattern!r} is not a valid regular expression ({error})") from None


def accept_code_changes(runs: list[dict], sweep_dir: Path) -> dict:
    """Record the current source hashes in every finished run whose identity differs from its plan only in them;
    logs each acceptance (UTC time, the files, the run ids) to ``sweep_dir/accepted-code-changes.log``.

    Returns ``{changed files: [run ids]}``. A run that differs in anything else is left stale.
    """
    accepted = {}
    for run in runs:
        status, _ = inspect(run)
        recorded, _ = recorded_identity(run)
        current = run["identity"]["package"]
        # Only a run that recorded its hashes: without them, what code made it is unknown.
        if (
            status == "stale"
            and isinstance(recorded, dict)
            and isinstance(recorded.get("package"), dict)
            and {**recorded, "package": current, "presets": _presets_of(recorded, run["identity"])} == run["identity"]
        ):
            accepted.setdefault(tuple(changed_sources(recorded["package"], current)), []).append(run)
    name = sweep_dir.name
    if not accepted:
        print(f"sweep {name}: --accept-code-change: no finished run differs from its plan only in nfmix's source")
    for files, group in accepted.items():
        ids = [run["id"] for run in group]
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / ACCEPTED_LOG, "a") as log:  # logged before the run.json files are rewritten
            log.write(
                f"{stamp} accepted nfmix source change ({', '.join(files)}) for {len(ids)} run(s): {', '.join(ids)}\n"
            )
        for run in group:
            write_json_atomic(Path(run["out_dir"]) / RUN_FILE, run["identity"])
        print(
            f"sweep {name}: accepted the change to {', '.join(files)} for {len(ids)} finished run(s); "
            f"logged in {sweep_dir / ACCEPTED_LOG}"
        )
    return {files: [run["id"] for run in group] for files, group in accepted.items()}


def run_sweep(
    path,
    results_dir=REPO / "results",
    jobs: int = 1,
    retry_failed: bool = False,
    dry_run: bool = False,
    dask: str | None = None,
    overrides: dict | None = None,
    only: str | None = None,
    accept_code_change: bool = False,
) -> dict:
    """Plan, check, run what is missing, stale or broken (or only the failed; or of those, only ids matching
    ``only``), aggregate; returns counts, the failures and the runs skipped because another process had them.

    ``accept_code_change`` first marks runs made stale only by an edit of nfmix's source as done (and logs it);
    it does so with ``dry_run`` too. Bad input raises :class:`SweepError` before anything is run or written.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SweepError(f"--jobs must be at least 1, got {jobs}")
    pattern = _only(only)
    sweep = load_sweep(path)
    runs = plan(sweep, results_dir, overrides)
    check_parameters(runs)
    sweep_dir = Path(results_dir) / sweep["name"]
    _check_results_folder(sweep_dir / "runs", write=accept_code_change or not dry_run)
    if accept_code_change:
        accept_code_changes(runs, sweep_dir)
    states = {run["id"]: inspect(run) for run in runs}
    wanted = ("failed",) if retry_failed else ("missing", "stale", "broken")
    todo = [r for r in runs if states[r["id"]][0] in wanted and (pattern is None or pattern.search(r["id"]))]
    counts = Counter(status for status, _ in states.values())
    print(
        f"sweep {sweep['name']}: {len(runs)} runs ({', '.join(f'{counts[s]} {s}' for s in STATES)}); "
        f"running {len(todo)}"
    )
    verb = "left out of the results until rerun" if retry_failed else "to rerun"
    unusable = Counter(why for why in states.values() if why[0] in ("stale", "broken"))
    for (status, reason), n in unusable.items():
        why = "changed since they ran" if status == "stale" else "because"
        print(f"  {n} {status} run(s) {verb}, {why}: {reason}")
    if dry_run:
        for run in runs:
            marker = "run " if run in todo else "skip"
            print(f"  {marker} [{states[run['id']][0]:7}] {run['id']}")
        return {"planned": len(todo), "ran": 0, "failures": [], "skipped": []}
    outcomes = _dask(todo, dask, jobs) if dask is not None else _local(todo, jobs)
    failures, skipped = [], []
    for outcome in tqdm(outcomes, total=len(todo), desc=f"sweep {sweep['name']}", unit="run"):
        if outcome["status"] == "failed":
            failures.append(outcome)
            tqdm.write(f"FAILED {outcome['id']}: see {outcome['notebook']}\n  {outcome['error'].splitlines()[-1]}")
        elif outcome["status"] == "skipped":
            skipped.append(outcome)
            tqdm.write(outcome["message"])
    table = aggregate(runs, sweep_dir)
    if skipped:
        print(f"{len(skipped)} run(s) skipped: another process had them (their results count once it finishes)")
    if failures:
        print(f"{len(failures)} run(s) failed; fix them, then: python -m nfmix.sweep {path} --retry-failed")
    return {
        "planned": len(todo),
        "ran": len(todo) - len(skipped),
        "failures": failures,
        "skipped": skipped,
        "table": table,
    }


# ---------------------------------------------------------------------------------------------- results
def collect(runs: list[dict], sweep_dir: Path | None = None) -> pd.DataFrame:
    """One tidy row per (finished, current run, method): parameters, metrics, loss, timings and the nfmix version;
    never stale runs. Archived rows (``sweep_dir/archive.csv``) stand in for planned runs not done here."""
    rows, done = [], set()
    for run in runs:
        if state(run) == "done":
            version = run["identity"]["nfmix"]  # a done run's run.json is its identity
            rows += [{"run": run["id"], "nfmix": version, **row} for row in _metrics(run)[0]]
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
    tidy["variant"] = [
        v if isinstance(v, str) and v else variant_name(d, p) for v, d, p in zip(named, tidy["dataset"], tidy["pca"])
    ]
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
            cells.append(
                f"{mean:.3f}"
                + ("" if pd.isna(sd) else f" ± {sd:.3f}")
                + ("" if pd.isna(low) else f" [{low:.3f}, {high:.3f}]")
            )
        summary[metric] = cells
    if "loss" in tidy:
        with_loss = tidy.dropna(subset=["loss"])
        best = with_loss.loc[with_loss.groupby(keys)["loss"].idxmin()].set_index(keys)
        for metric in ("ari", "accuracy"):
            summary[f"best-likelihood {metric}"] = (
                best[metric].reindex(summary.index).map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
            )
    return summary.reset_index()


def significance(tidy: pd.DataFrame, metric: str = "ari") -> pd.DataFrame:
    """Each flow set-up against the better of k-means and the GMM on every variant, paired by seed (Wilcoxon)."""
    from nfmix.stats import against_best_baseline

    if tidy.empty or "method" not in tidy:
        return pd.DataFrame()
    tidy = with_variant(tidy)
    flows = sorted(m for m in tidy["method"].unique() if m.startswith("maf"))
    tables = [
        against_best_baseline(tidy, m, metric=metric).rename(columns={m: "flows mean"}).assign(setup=m) for m in flows
    ]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs the optional ``tabulate``)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


FIGURES = (
    "density.gif",
    "final.png",
    "gmm_vs_flows.png",
    "contingency.png",
    "samples.png",
    "embedding_clusters.png",
    "flow_density.png",
)


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
        try:
            overrides[name] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise SweepError(
                f"--set {pair!r}: the value is not valid YAML ({_yaml_problem(error, lines=False)})"
            ) from None
    return overrides


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfmix.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a sweep file, e.g. sweeps/toy.yaml")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (worker processes)")
    parser.add_argument("--results", default=str(REPO / "results"), help="results folder")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    parser.add_argument("--retry-failed", action="store_true", help="rerun only the runs that failed")
    parser.add_argument("--only", metavar="REGEX", help="run only the runs whose id matches (aggregate them all)")
    parser.add_argument(
        "--dask",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run through a Dask distributed cluster: a local one, or the scheduler at ADDRESS",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override a parameter of every run")
    parser.add_argument(
        "--accept-code-change",
        action="store_true",
        help="count as done the finished runs that only an edit of nfmix's source made stale (logged)",
    )
    args = parser.parse_args(argv)
    try:
        outcome = run_sweep(
            args.sweep,
            args.results,
            jobs=args.jobs,
            retry_failed=args.retry_failed,
            dry_run=args.dry_run,
            dask=args.dask,
            overrides=_parse_overrides(args.set),
            only=args.only,
            accept_code_change=args.accept_code_change,
        )
    except (SweepError, FileNotFoundError) as error:  # bad input: a message, not a traceback
        parser.error(str(error))
    return 1 if outcome["failures"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # piped into `head`: stop quietly (Python's documented recipe), not with a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
