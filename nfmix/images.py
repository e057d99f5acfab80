"""Image datasets as the paper used them: train and test concatenated, pixels / 255, flattened.

Files are read, in this order, from ``data_dir``, from the places the data is already installed
(Debian's ``dataset-fashion-mnist`` package, the Keras cache ``~/.keras/datasets``), and as a last resort
downloaded through Keras where the network allows (Colab). Set ``NFMIX_DOWNLOAD=0`` to never download.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def keras_cache_dir() -> Path:
    """Where ``keras.datasets`` keeps its downloads (``$KERAS_HOME/datasets``, by default ``~/.keras/datasets``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, as a uint8 array of the shape its header gives."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files are supported (type code {raw[2]:#x})")
    ndim = raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: IDX header is truncated or declares {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz); used to make test fixtures."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _idx_in(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_set(folders: list[Path]) -> tuple[np.ndarray, np.ndarray] | None:
    """The four IDX files from the first folder that holds them all, train then test concatenated."""
    for folder in folders:
        paths = [_idx_in(folder, stem) for stem in IDX_FILES]
        if all(paths):
            train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
            _same_count(train_x, train_y, f"{paths[0]} and {paths[1]}")
            _same_count(test_x, test_y, f"{paths[2]} and {paths[3]}")
            return np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    return None


def _same_count(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    """Images and labels pair up one to one; a mismatch means a truncated or mixed-up file."""
    if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{source} do not match: images of shape {images.shape}, labels of shape {labels.shape} "
            f"(expected N images and N labels)"
        )


def _download_allowed(download: bool | None) -> bool:
    if download is None:
        return os.environ.get("NFMIX_DOWNLOAD", "1") != "0"
    return download


def _missing(name: str, wanted: str, searched: list[Path], how: str) -> FileNotFoundError:
    where = ", ".join(str(p) for p in searched)
    return FileNotFoundError(f"{name}: {wanted} not found (searched {where}). {how}")


def _flatten_scaled(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # One float32 pass into a 64-byte aligned buffer: no intermediate copy, and a fit can use it in place.
    flat = images.reshape(len(images), -1)
    X = aligned_empty(flat.shape, np.float32)
    np.divide(flat, np.float32(255.0), out=X, dtype=np.float32)
    return X, labels.reshape(-1).astype(np.int64)


def aligned_empty(shape, dtype=np.float32, alignment: int = 64) -> np.ndarray:
    """An uninitialised array whose data starts on an ``alignment``-byte boundary.

    TensorFlow takes a 64-byte aligned float32 array in place (DLPack) instead of copying it; see
    :func:`nfmix.train.data_tensor`.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(size + alignment, np.uint8)
    offset = -buffer.ctypes.data % alignment
    return buffer[offset : offset + size].view(dtype).reshape(shape)


def load_mnist(data_dir=None, download: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST, 70,000 x 784: ``mnist.npz`` (the Keras file) or the four IDX files, in ``data_dir`` or the Keras cache."""
    folders = ([Path(data_dir)] if data_dir else []) + [keras_cache_dir()]
    for folder in folders:
        if (folder / "mnist.npz").is_file():
            with np.load(folder / "mnist.npz") as f:
                x_train, y_train, x_test, y_test = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
            _same_count(x_train, y_train, f"{folder / 'mnist.npz'} x_train and y_train")
            _same_count(x_test, y_test, f"{folder / 'mnist.npz'} x_test and y_test")
            return _flatten_scaled(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]))
    found = _load_idx_set(folders)
    if found is not None:
        return _flatten_scaled(*found)
    if _download_allowed(download):
        return _keras_download("mnist")
    raise _missing(
        "mnist",
        "mnist.npz (or the four MNIST IDX files)",
        folders,
        'Run `python -c "import tf_keras; tf_keras.datasets.mnist.load_data()"` where the network allows '
        "(it saves ~/.keras/datasets/mnist.npz), or copy mnist.npz into data_dir.",
    )


def load_mnist5(data_dir=None, download: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST restricted to the digits 0-4 (35,735 images)."""
    X, y = load_mnist(data_dir, download)
    keep = y < 5
    return X[keep], y[keep]


def load_fmnist(data_dir=None, download: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST, 70,000 x 784, from its four IDX files (Debian's dataset-fashion-mnist ships them)."""
    folders = ([Path(data_dir)] if data_dir else []) + [DEBIAN_FASHION_MNIST, keras_cache_dir() / "fashion-mnist"]
    found = _load_idx_set(folders)
    if found is not None:
        return _flatten_scaled(*found)
    if _download_allowed(download):
        return _keras_download("fashion_mnist")
    raise _missing(
        "fmnist",
        "the four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...)",
        folders,
        "Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or run "
        '`python -c "import tf_keras; tf_keras.datasets.fashion_mnist.load_data()"` where the network allows.',
    )


def load_cifar10(data_dir=None, download: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10, 60,000 x 3072 (32x32x3, channels last as Keras gives them), from the python-version batches."""
    roots = ([Path(data_dir)] if data_dir else []) + [keras_cache_dir()]
    folders = [r / "cifar-10-batches-py" for r in roots] + roots
    for folder in folders:
        if all((folder / b).is_file() for b in CIFAR_BATCHES):
            images, labels = [], []
            for batch in CIFAR_BATCHES:
                with open(folder / batch, "rb") as f:
                    content = pickle.load(f, encoding="bytes")
                images.append(np.asarray(content[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(content[b"labels"]))
                _same_count(images[-1], labels[-1], f"{folder / batch} data and labels")
            images = np.concatenate(images).transpose(0, 2, 3, 1)
            return _flatten_scaled(images, np.concatenate(labels))
    if _download_allowed(download):
        return _keras_download("cifar10")
    raise _missing(
        "cifar10",
        "the CIFAR-10 python batches (cifar-10-batches-py/data_batch_1..5, test_batch)",
        folders,
        'Run `python -c "import tf_keras; tf_keras.datasets.cifar10.load_data()"` where the network allows '
        "(it unpacks into ~/.keras/datasets), or unpack cifar-10-python.tar.gz into data_dir.",
    )


def _keras_download(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Fetch through Keras (it caches under ~/.keras/datasets, where the loaders above look next time)."""
    import tf_keras

    try:
        (train_x, train_y), (test_x, test_y) = getattr(tf_keras.datasets, name).load_data()
    except Exception as error:  # no network, proxy refusal, truncated archive...
        raise FileNotFoundError(
            f"{name} is not on this machine and downloading it through Keras failed ({error}). "
            f"Fetch it where the network allows, or set NFMIX_DOWNLOAD=0 to see where nfmix looks for files."
        ) from error
    return _flatten_scaled(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y]))


IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28), "mnist5": (28, 28), "fmnist": (28, 28), "cifar10": (32, 32, 3)}
LOADERS = {"mnist": load_mnist, "mnist5": load_mnist5, "fmnist": load_fmnist, "cifar10": load_cifar10}
