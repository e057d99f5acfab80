"""Machine-readable results: each notebook run writes its metric rows to ``out_dir/metrics.json``.

Written atomically (a temporary file renamed into place), so a run killed midway never leaves half a result,
and a batch run can take a file's existence as proof that the run finished (it is never empty).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

METRICS_FILE = "metrics.json"


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot record {type(value).__name__}")


def run_folder(out_dir: str, notebook: str, variant: str) -> Path | None:
    """A notebook's output folder: ``"auto"`` is ``outputs/<notebook>/<variant>``, ``""`` none, else as given."""
    if out_dir == "auto":
        return Path("outputs") / notebook / variant
    return Path(out_dir) if out_dir else None


def write_json_atomic(path, payload) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as f:
        json.dump(payload, f, indent=1, default=_plain)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path


def record_metrics(rows: list[dict], out_dir, **shared) -> Path | None:
    """Write ``rows`` (each with ``shared`` fields added, e.g. the run's parameters) to ``out_dir/metrics.json``.

    No rows is an error: an empty metrics.json would say "finished" with no result in it.
    """
    if not out_dir:
        return None
    if not rows:
        raise ValueError(f"no metric rows to record in {out_dir}: a run must record at least one")
    return write_json_atomic(Path(out_dir) / METRICS_FILE, [{**shared, **row} for row in rows])
