"""Saving and loading a fitted :class:`~nfmix.model.MAFMixture`: a folder with ``config.json`` and the arrays file
that it names.

A save never leaves the path without a model. The arrays go to a new file, ``arrays-<random>.npz``, beside the
old one; then a new ``config.json`` naming that file atomically replaces the old one (the commit point); only then
is the old arrays file deleted. At every instant ``config.json`` names a complete arrays file, so a crash at any
step leaves the old or the new model at the path, and the folder's other files are never touched. (Two processes
saving to one path at the same time are not supported: one may delete the other's arrays file.)

``config.json`` records a format version and a sha256 checksum over its parameters, its fitted attributes and the
arrays file's bytes, so a hand-edited save is refused rather than loaded with the wrong network. Format 1
(``arrays.npz``, no checksum) still loads. ``load`` names the path and the problem when a folder is not a model,
is corrupt, is inconsistent, or was written by an unknown format.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "nfmix.MAFMixture"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG_FILE, LEGACY_ARRAYS_FILE = "config.json", "arrays.npz"
# This module's own files in a model folder: any not named by config.json is a leftover of an interrupted save.
ARRAYS_FILE = re.compile(r"arrays(-[0-9a-f]{16})?\.npz")
OWN_FILE = re.compile(rf"{ARRAYS_FILE.pattern}|\.{re.escape(CONFIG_FILE)}\.\w+\.tmp")
ARRAY_PARAM = "constructor/"  # prefix of the arrays that hold array-valued constructor parameters (init labels)
STRUCTURE = ("n_components", "hidden_units", "n_blocks", "activation", "trainable_base", "base")


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


def decode(value, arrays: dict):
    if isinstance(value, dict):
        ((kind, items),) = value.items()
        if kind == "__random_state__":
            state = np.random.RandomState()
            state.set_state((items[0], np.asarray(items[1], np.uint32), *items[2:]))
            return state
        if kind == "__array__":
            return arrays[items]
        decoded = [decode(v, arrays) for v in items]
        return tuple(decoded) if kind == "__tuple__" else decoded
    return value


def _encode_params(params: dict) -> tuple[dict, dict]:
    """``(JSON params, arrays)``: a numeric array parameter is stored in the arrays file, its JSON a reference."""
    encoded, arrays = {}, {}
    for name, value in params.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arrays[ARRAY_PARAM + name] = value
            encoded[name] = {"__array__": ARRAY_PARAM + name}
        else:
            encoded[name] = encode(value, name)
    return encoded, arrays


def _checksum(params: dict, fitted: dict, arrays_bytes: bytes) -> str:
    canonical = json.dumps({"params": params, "fitted": fitted}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode() + b"\0" + arrays_bytes).hexdigest()


def save(path, params: dict, fitted: dict, arrays: dict, version: str) -> None:
    """Write ``params`` (constructor arguments), ``fitted`` (JSON attributes) and ``arrays`` under ``path``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save a model to {path}: it is a file, not a folder")
    if path.is_dir() and not _is_saved_model(path) and any(not OWN_FILE.fullmatch(p.name) for p in path.iterdir()):
        raise ValueError(
            f"cannot save a model to {path}: the folder holds other files and no saved model (only a "
            "saved model's folder, whose other files are kept, or an empty folder is written to)"
        )
    params, param_arrays = _encode_params(params)
    # Round-tripped through JSON so that the checksum reads exactly what load will read; fails here, before
    # anything is written, if something is not JSON.
    body = json.loads(json.dumps({"params": params, "fitted": fitted}))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **param_arrays)
    data = buffer.getvalue()
    arrays_name = f"arrays-{secrets.token_hex(8)}.npz"
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nfmix_version": version,
        "arrays": arrays_name,
        "checksum": _checksum(body["params"], body["fitted"], data),
        **body,
    }
    path.mkdir(parents=True, exist_ok=True)
    arrays_file, staged_config = path / arrays_name, None
    try:
        _write_durably(arrays_file, data)
        descriptor, staged_config = tempfile.mkstemp(prefix=f".{CONFIG_FILE}.", suffix=".tmp", dir=path)
        os.close(descriptor)
        _write_durably(Path(staged_config), json.dumps(config, indent=1).encode(), exclusive=False)
        _fsync_folder(path)  # the arrays file's entry is on disk before a config that names it can be
    except BaseException:
        # Uncommitted files only: the old model is untouched. A file that cannot go is deleted by the next save.
        for file in filter(None, (arrays_file, staged_config)):
            with contextlib.suppress(OSError):
                os.unlink(file)
        raise
    # The commit point, outside the handler above: once it is done, the new arrays file must stay.
    os.replace(staged_config, path / CONFIG_FILE)
    _fsync_folder(path)
    for file in path.iterdir():  # the previous model's arrays, and leftovers of interrupted saves
        if OWN_FILE.fullmatch(file.name) and file.name != arrays_name:
            try:
                os.unlink(file)
            except OSError as error:
                warnings.warn(
                    f"saved the model to {path}, but could not delete the unused file {file} ({error}); "
                    "it can be deleted",
                    RuntimeWarning,
                    stacklevel=3,
                )


def _write_durably(file: Path, data: bytes, exclusive: bool = True) -> None:
    with open(file, "xb" if exclusive else "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # Windows cannot open a folder to fsync it; its renames are journalled by NTFS
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _is_saved_model(path: Path) -> bool:
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _missing_config(path: Path) -> FileNotFoundError:
    """The error for a path without ``config.json``, pointing at a model that an interrupted save left aside."""
    message = f"{path / CONFIG_FILE} not found: is {path} a folder written by MAFMixture.save?"
    # nfmix <= 0.2.0 renamed the old folder aside before moving the new one in; a crash in between left it here.
    aside = sorted(path.parent.glob(f".{path.name}.old.*/model/{CONFIG_FILE}"))
    if aside:
        old = aside[-1].parent
        clear = f"delete the folder {path}, then " if path.exists() else ""
        message += (
            f" A save to {path} was interrupted and the previous model is in {old}; to restore it, {clear}"
            f"move {old} to {path} (e.g. `mv {old} {path}`)"
        )
    elif path.is_dir() and any(OWN_FILE.fullmatch(p.name) for p in path.iterdir()):
        message += " (it holds only the leftovers of a first save that was interrupted; save the model again)"
    return FileNotFoundError(message)


def load(path, build):
    """``build(params, fitted, arrays)`` of the data in a folder written by :func:`save`.

    ``build`` raises KeyError, TypeError, ValueError, AttributeError or IndexError for data it finds inconsistent;
    it runs before the checksum is compared, so that a mismatch it can name is reported by name. A missing file
    gives FileNotFoundError, anything else wrong a ValueError; both name the file and the problem.
    """
    path = Path(path)
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise _missing_config(path)
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{config_file} is not valid JSON ({error}): the saved model is corrupt or truncated"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{config_file} does not describe a saved MAFMixture")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ValueError(
            f"{path} was saved in format version {version!r}; this nfmix reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (saved by nfmix {config.get('nfmix_version')})"
        )
    arrays_name = config.get("arrays") if version >= 2 else LEGACY_ARRAYS_FILE
    if not isinstance(arrays_name, str) or not ARRAYS_FILE.fullmatch(arrays_name):
        raise ValueError(f"{config_file} names no valid arrays file (arrays={arrays_name!r})")
    arrays_file = path / arrays_name
    try:
        data = arrays_file.read_bytes()
        with np.load(io.BytesIO(data)) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{arrays_file} not found: the saved model at {path} is incomplete") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{arrays_file} cannot be read ({error}): the saved model is corrupt or truncated") from None
    try:
        expected = _checksum(config["params"], config["fitted"], data) if version >= 2 else None
        params = {name: decode(value, arrays) for name, value in config["params"].items()}
        fitted = dict(config["fitted"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{config_file} is missing or has malformed entries ({error!r})") from None
    try:
        built = build(params, fitted, arrays)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ValueError(f"{path} does not hold a consistent MAFMixture: {error}") from None
    if version >= 2 and config.get("checksum") != expected:
        raise ValueError(
            f"{config_file} was changed after saving, or {arrays_name} was (checksum mismatch): the "
            "model it describes is not the one whose arrays were saved; re-save the model from a fit"
        )
    return built


# ---------------------------------------------------------------------- MAFMixture <-> saved data
def structure_changes(params: dict, spec) -> list[str]:
    """The constructor parameters in ``params`` that no longer describe the fitted network ``spec``."""
    fitted = {name: getattr(spec, name) for name in STRUCTURE}
    changes = []
    for name in STRUCTURE:
        value = params.get(name, "diag" if name == "base" else None)  # format 1 predates base
        if name == "hidden_units":
            same = isinstance(value, (tuple, list)) and tuple(value) == fitted[name]
        elif name == "base" and value == "auto":  # it fits "diag" flows, and may keep its "gmm" start instead
            same = fitted[name] in ("diag", "gmm")
        else:
            same = not isinstance(value, (tuple, list, np.ndarray)) and value == fitted[name]
        if not same:
            changes.append(f"{name}={value!r} (fitted with {fitted[name]!r})")
    return changes


def save_model(model, path) -> None:
    """Write a fitted MAFMixture to the folder ``path``."""
    from sklearn.utils.validation import check_is_fitted

    from nfmix import __version__

    check_is_fitted(model)
    spec = model._fitted_spec
    params = model.get_params()
    changes = structure_changes(params, spec)
    if changes:
        raise ValueError(
            f"cannot save the model to {path}: set_params changed {', '.join(changes)} after fit, so "
            "the parameters no longer describe the fitted network; set them back or fit again"
        )
    fitted = {
        "n_features_in_": int(model.n_features_in_),
        "n_iter_": int(model.n_iter_),
        "converged_": bool(model.converged_),
        "best_restart_": int(model.best_restart_),
        "lower_bound_": float(model.lower_bound_),
        "gaussian_only_": bool(getattr(model, "gaussian_only_", False)),
        "history_": model.history_,
        "feature_names_in_": getattr(model, "feature_names_in_", np.array([])).tolist(),
        "spec": spec.fields(),
    }
    for name in ("validation_scores_", "best_validation_score_"):  # early stopping's
        if hasattr(model, name):
            fitted[name] = getattr(model, name)
    arrays = {
        **{f"params/{k}": v for k, v in model.params_.items()},
        "restart_losses_": model.restart_losses_,
        "labels_": model.labels_,
    }
    for name in ("data_min_", "data_range_"):
        if getattr(model, name, None) is not None:
            arrays[name] = getattr(model, name)
    save(path, params, fitted, arrays, __version__)


def load_model(cls, path):
    """A ``cls`` (MAFMixture) read from a folder written by :func:`save_model`; refuses inconsistent data."""
    from scipy.special import softmax

    def build(params, fitted, arrays):
        model = cls(**{"base": "diag", **params})  # format 1 predates base: its models are "diag"
        spec = _spec(fitted.pop("spec"), model)
        names = fitted.pop("feature_names_in_")
        fitted.setdefault("gaussian_only_", False)  # saved before base="auto"
        for name, value in fitted.items():
            setattr(model, name, value)
        if names:
            model.feature_names_in_ = np.asarray(names, dtype=object)
        _check_consistent(model, spec, arrays)
        model.params_ = {name: arrays[f"params/{name}"] for name in spec.names()}
        model.restart_losses_, model.labels_ = arrays["restart_losses_"], arrays["labels_"]
        # Format 1 predates the internal rescaling: its networks read the features as they are.
        model.data_min_ = arrays.get("data_min_", np.zeros(spec.n_features))
        model.data_range_ = arrays.get("data_range_", np.ones(spec.n_features))
        model._fitted_spec = spec
        model.weights_ = softmax(model.params_["logits"].astype(np.float64))
        return model

    return load(path, build)


def _spec(saved, model):
    """The fitted spec as saved: by field name (format 2), or as format 1's list."""
    from nfmix.flows import MixtureSpec

    if isinstance(saved, dict):
        fields = {**saved, "hidden_units": tuple(int(h) for h in saved["hidden_units"])}
        return MixtureSpec(n_restarts=1, **fields)
    n_features, hidden, n_blocks, activation, trainable_base = saved
    return MixtureSpec(
        1, int(model.n_components), int(n_features), tuple(hidden), int(n_blocks), activation, bool(trainable_base)
    )


def _check_consistent(model, spec, arrays: dict) -> None:
    """Raise ValueError naming every way the config and the arrays disagree on a dimension the model implies."""
    D, K, n_init = spec.n_features, spec.n_components, int(model.n_init)
    problems = [f"the parameters say {change}" for change in structure_changes(model.get_params(), spec)]
    if model.n_features_in_ != D:
        problems.append(f"n_features_in_={model.n_features_in_} but the network has {D} input features")
    names = getattr(model, "feature_names_in_", None)
    if names is not None and len(names) != D:
        problems.append(f"feature_names_in_ has {len(names)} names for {D} features")
    stored = {name for name in arrays if name.startswith("params/")}
    wanted = {f"params/{name}" for name in spec.names()}
    if stored != wanted:
        problems.append(
            f"the arrays hold {sorted(stored - wanted)} and lack {sorted(wanted - stored)} for "
            f"n_blocks={spec.n_blocks}, hidden_units={spec.hidden_units}"
        )
    for name, shape in zip(spec.names(), spec.shapes()):
        if f"params/{name}" in arrays and arrays[f"params/{name}"].shape != shape[1:]:
            problems.append(
                f"params/{name} has shape {arrays[f'params/{name}'].shape}, but n_components={K}, "
                f"{D} features and hidden_units={spec.hidden_units} make it {shape[1:]}"
            )
    expected = {"restart_losses_": (n_init,), "data_min_": (D,), "data_range_": (D,)}
    for name, shape in expected.items():
        if name in arrays and arrays[name].shape != shape:
            problems.append(f"{name} has shape {arrays[name].shape}, expected {shape} (n_init={n_init}, {D} features)")
    labels = arrays.get("labels_")
    if labels is None or labels.ndim != 1 or (labels.size and not 0 <= labels.min() <= labels.max() < K):
        problems.append(f"labels_ must be a 1-D array of components in [0, {K})")
    elif not isinstance(model.init, str) and len(model.init) != len(labels):
        problems.append(f"labels_ has {len(labels)} rows but init has {len(model.init)} labels")
    if not 0 <= model.best_restart_ < n_init:
        problems.append(f"best_restart_={model.best_restart_} is not a restart of n_init={n_init}")
    unknown = {name for name in arrays if not name.startswith(("params/", ARRAY_PARAM))} - {*expected, "labels_"}
    if unknown:
        problems.append(f"the arrays file holds unexpected arrays {sorted(unknown)}")
    if "restart_losses_" not in arrays:
        problems.append("the arrays file lacks restart_losses_")
    if problems:
        raise ValueError("; ".join(problems))
