"""Datasets by name: the paper's five 2D toy sets and the image sets.

Every loader returns ``(X, y)``: ``X`` a float32 array of shape ``(n, d)`` and ``y`` an int64 label vector.
The toy sets are generated exactly as the original project did (same generators, sizes, noise and seeds) and
min-max rescaled to [0, 1] per column; the image sets live in :mod:`nfmix.images`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def check_array(X, name: str = "X") -> np.ndarray:
    """Return ``X`` as a float32 2D array, or raise a ValueError saying what is wrong with it."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2D array of shape (n_samples, n_features); got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {X.shape}")
    if np.iscomplexobj(X):  # casting to float would silently drop the imaginary part
        raise ValueError(f"{name} must be real; got complex dtype {X.dtype} (pass X.real or np.abs(X) if meant)")
    if not np.issubdtype(X.dtype, np.number):  # also refuses bool and object arrays
        raise ValueError(f"{name} must be numeric; got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(f"{name} contains NaN or inf in {len(rows)} row(s), first at row {rows[0]}")
    return X


def minmax_columns(X: np.ndarray) -> np.ndarray:
    """Rescale every column to [0, 1], as the original project did for all 2D sets."""
    X = np.asarray(X, dtype=np.float64)
    for column in range(X.shape[1]):  # either would turn the whole column into NaN
        if not np.isfinite(X[:, column]).all():
            row = np.flatnonzero(~np.isfinite(X[:, column]))[0]
            raise ValueError(f"column {column} holds NaN or inf (first at row {row}); cannot rescale it to [0, 1]")
        if np.ptp(X[:, column]) == 0:
            raise ValueError(f"column {column} is constant ({X[0, column]}); cannot rescale it to [0, 1]")
    low, high = X.min(axis=0), X.max(axis=0)
    return ((X - low) / (high - low)).astype(np.float32)


def two_banana() -> tuple[np.ndarray, np.ndarray]:
    """Two copies of the banana of Papamakarios et al. (2017), the second shifted by +2 on both axes."""
    rng = np.random.RandomState(1)
    n = 2000
    x2 = rng.randn(n).astype(np.float32) * 2.0
    x1 = rng.randn(n).astype(np.float32) + x2 * x2 / 4.0
    # The original divides by the max of the raw column (not the range); the final rescale absorbs it anyway.
    x2 = (x2 - x2.min()) / x2.max()
    x1 = (x1 - x1.min()) / x1.max()
    banana = np.stack([x1, x2], axis=-1)
    X = np.concatenate([banana, banana + 2.0])
    y = np.repeat([0, 1], n)
    return minmax_columns(X), y.astype(np.int64)


def smile(data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 2D 'smile' set: 400 rows of x, y, label (all 400 read; the original skipped the first as a header)."""
    path = _find_file("smile.csv", data_dir)
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != 3:
            raise ValueError(f"must have 3 columns (x, y, label); got shape {table.shape}")
        labels = table[:, 2]
        bad = np.flatnonzero(labels != np.round(labels))  # NaN too: cast, it would become a huge negative label
        if bad.size:
            raise ValueError(f"labels (column 2) must be whole numbers; row {bad[0]} holds {labels[bad[0]]}")
        return minmax_columns(table[:, :2]), labels.astype(np.int64)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def moons() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    X, y = make_moons(1000, noise=0.1, random_state=np.random.RandomState(1))
    return minmax_columns(X), y.astype(np.int64)


def circles() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    X, y = make_circles(1000, noise=0.01, random_state=np.random.RandomState(1))
    return minmax_columns(X), y.astype(np.int64)


def pinwheel(
    n_spokes: int = 5,
    per_spoke: int = 512,
    radial_std: float = 0.3,
    tangential_std: float = 0.05,
    rate: float = 0.25,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The pinwheel of Johnson et al. (2016, SVAE): spokes that bend more the further out they reach."""
    rng = np.random.RandomState(seed)
    spoke_angles = np.linspace(0, 2 * np.pi, n_spokes, endpoint=False)
    features = rng.randn(n_spokes * per_spoke, 2) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(n_spokes), per_spoke)
    angles = spoke_angles[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
    rotations = rotations.T.reshape(-1, 2, 2)
    points = 10 * np.einsum("ti,tij->tj", features, rotations)
    shuffled = rng.permutation(np.hstack([points, labels[:, None]]))
    return minmax_columns(shuffled[:, :2]), shuffled[:, 2].astype(np.int64)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's shipped 8x8 digit images (1797 x 64), pixels scaled to [0, 1]: the offline image set."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def _find_file(filename: str, data_dir: str | os.PathLike | None) -> Path:
    """Find a shipped data file in ``data_dir``, ``$NFMIX_DATA``, the repository's ``data/`` or the installed wheel."""
    candidates = [Path(d) for d in (data_dir, os.environ.get("NFMIX_DATA")) if d] + [REPO_DATA_DIR]
    # The copy inside an installed wheel. nfmix.datafiles is a namespace package (no __init__.py), so its folder is
    # its search location: str() of importlib.resources.files() would be "MultiplexedPath(...)", no folder at all.
    from importlib.util import find_spec

    spec = find_spec("nfmix.datafiles")
    candidates += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for folder in candidates:
        if (folder / filename).is_file():
            return folder / filename
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"{filename} not found (searched {searched}). It ships in the repository's data/ folder: "
        f"clone the repository and `pip install -e .`, or pass data_dir= the folder that holds it."
    )


TOY_DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "two_banana": two_banana,
    "smile": smile,
    "moons": moons,
    "circles": circles,
    "pinwheel": pinwheel,
}


def _image_loaders() -> dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]]:
    from nfmix import images

    return {"digits": digits, **images.LOADERS}


def dataset_names() -> list[str]:
    """Every name :func:`load_dataset` accepts."""
    return list(TOY_DATASETS) + list(_image_loaders())


def load_dataset(
    name: str,
    pca: int | None = None,
    data_dir: str | os.PathLike | None = None,
    subsample: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset by name as ``(X float32 (n, d), y int64 (n,))``.

    ``pca`` projects onto that many principal components (the paper's "PCA-100" variants use 100);
    ``subsample`` keeps that many rows drawn without replacement with ``seed`` (for quick runs), before PCA;
    ``data_dir`` is where image files (or ``smile.csv``) are looked for first.
    """
    loaders = {**TOY_DATASETS, **_image_loaders()}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(loaders)}")
    if pca is not None and (isinstance(pca, bool) or not isinstance(pca, (int, np.integer)) or pca < 1):
        raise ValueError(f"pca must be a positive integer number of components or None; got {pca!r}")
    if subsample is not None and (not isinstance(subsample, (int, np.integer)) or subsample < 1):
        raise ValueError(f"subsample must be a positive integer or None; got {subsample!r}")

    loader = loaders[name]
    takes_dir = "data_dir" in inspect.signature(loader).parameters
    X, y = loader(data_dir=data_dir) if takes_dir else loader()
    if subsample is not None and subsample < len(X):
        keep = np.sort(np.random.RandomState(seed).choice(len(X), subsample, replace=False))
        X, y = X[keep], y[keep]
    if pca is not None:
        X, _ = pca_project(X, pca, seed=seed)
    return np.ascontiguousarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)


def variant_name(dataset: str, pca: int | None = 0) -> str:
    """How results name a dataset and its projection: ``fmnist`` raw, ``fmnist_pca100`` on 100 components."""
    return f"{dataset}_pca{int(pca)}" if pca else dataset


def pca_project(X: np.ndarray, n_components: int, seed: int = 0):
    """Project ``X`` onto its first ``n_components`` principal components; returns ``(Z, fitted PCA)``.

    Keep the PCA to map model samples back to pixels with ``pca.inverse_transform``.
    """
    from sklearn.decomposition import PCA

    if n_components > min(X.shape):
        raise ValueError(f"pca={n_components} exceeds min(n_samples, n_features) = {min(X.shape)}")
    pca = PCA(n_components=n_components, random_state=seed)
    return pca.fit_transform(X).astype(np.float32), pca
