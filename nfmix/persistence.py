"""Saving and loading a fitted :class:`~nfmix.model.MAFMixture`: a folder with ``config.json`` and ``arrays.npz``.

Writes are atomic: everything goes to a temporary folder beside the target, which is then renamed into place,
so a crash never leaves a half-written model. The config records a format version; ``load`` names the path and
the problem when a folder is not a model, is corrupt, or was written by an unknown format.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "nfmix.MAFMixture"
FORMAT_VERSION = 1
CONFIG_FILE, ARRAYS_FILE = "config.json", "arrays.npz"


def encode(value, name: str):
    """A JSON-safe form of one parameter value that :func:`decode` turns back into the same type."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return {"__tuple__" if isinstance(value, tuple) else "__list__": [encode(v, name) for v in value]}
    if isinstance(value, np.random.RandomState):
        kind, keys, position, has_gauss, cached = value.get_state()
        return {"__random_state__": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)]}
    raise TypeError(f"cannot save parameter {name}={value!r} of type {type(value).__name__}")


def decode(value):
    if isinstance(value, dict):
        (kind, items), = value.items()
        if kind == "__random_state__":
            state = np.random.RandomState()
            state.set_state((items[0], np.asarray(items[1], np.uint32), *items[2:]))
            return state
        decoded = [decode(v) for v in items]
        return tuple(decoded) if kind == "__tuple__" else decoded
    return value


def save(path, params: dict, fitted: dict, arrays: dict, version: str) -> None:
    """Write ``params`` (constructor arguments), ``fitted`` (JSON attributes) and ``arrays`` under ``path``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save a model to {path}: it is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not _is_saved_model(path):
        raise ValueError(f"cannot save a model to {path}: the folder holds other files (only a saved model, or an "
                         "empty folder, is replaced)")
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "nfmix_version": version,
              "params": {name: encode(value, name) for name, value in params.items()}, "fitted": fitted}
    text = json.dumps(config, indent=1)  # fails here, before anything is written, if something is not JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (staging / CONFIG_FILE).write_text(text)
        np.savez(staging / ARRAYS_FILE, **arrays)
        if path.exists():  # swap: the old model is removed only once the new one is in place
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "model")
            os.replace(staging, path)
            shutil.rmtree(old)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _is_saved_model(path: Path) -> bool:
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load(path) -> tuple[dict, dict, dict]:
    """``(params, fitted, arrays)`` from a folder written by :func:`save`.

    A missing file gives FileNotFoundError, anything else wrong a ValueError; both name the file and the problem.
    """
    path = Path(path)
    config_file, arrays_file = path / CONFIG_FILE, path / ARRAYS_FILE
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: is {path} a folder written by MAFMixture.save?")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_file} is not valid JSON ({error}): the saved model is corrupt or truncated") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{config_file} does not describe a saved MAFMixture")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} was saved in format version {config.get('format_version')!r}; this nfmix reads "
                         f"version {FORMAT_VERSION} (saved by nfmix {config.get('nfmix_version')})")
    try:
        with np.load(arrays_file) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{arrays_file} not found: the saved model at {path} is incomplete") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{arrays_file} cannot be read ({error}): the saved model is corrupt or truncated") from None
    try:
        params = {name: decode(value) for name, value in config["params"].items()}
        return params, config["fitted"], arrays
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{config_file} is missing or has malformed entries ({error!r})") from None
