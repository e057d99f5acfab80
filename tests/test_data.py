import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from nfmix import dataset_names, load_dataset
from nfmix.data import check_array
from nfmix.images import DEBIAN_FASHION_MNIST, load_cifar10, load_fmnist, load_mnist, read_idx, write_idx

TOY_SIZES = {
    "two_banana": (4000, [2000, 2000]),
    "smile": (400, [100, 200, 50, 50]),
    "moons": (1000, [500, 500]),
    "circles": (1000, [500, 500]),
    "pinwheel": (2560, [512] * 5),
}


@pytest.mark.parametrize("name", list(TOY_SIZES))
def test_toy_sets_match_the_published_generators(name):
    X, y = load_dataset(name)
    n, counts = TOY_SIZES[name]
    assert X.shape == (n, 2) and X.dtype == np.float32
    assert y.dtype == np.int64 and np.bincount(y).tolist() == counts
    assert X.min(axis=0) == pytest.approx([0, 0]) and X.max(axis=0) == pytest.approx([1, 1])
    X2, y2 = load_dataset(name)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


def test_two_banana_second_copy_is_the_first_shifted():
    X, y = load_dataset("two_banana")
    shift = X[y == 1] - X[y == 0]
    np.testing.assert_allclose(shift, shift[0] * np.ones_like(shift), atol=1e-5)
    assert (shift > 0).all()


def test_digits_is_the_offline_image_set_and_pca_projects_it():
    X, y = load_dataset("digits")
    assert X.shape == (1797, 64) and 0 <= X.min() and X.max() == 1.0 and len(np.unique(y)) == 10
    Z, y2 = load_dataset("digits", pca=10)
    assert Z.shape == (1797, 10) and Z.dtype == np.float32
    np.testing.assert_array_equal(y, y2)
    sub, ys = load_dataset("digits", subsample=100, seed=3)
    assert sub.shape == (100, 64)
    np.testing.assert_array_equal(sub, load_dataset("digits", subsample=100, seed=3)[0])


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'mnsit'.*two_banana.*fmnist"):
        load_dataset("mnsit")
    assert {"mnist", "mnist5", "fmnist", "cifar10", "digits", "pinwheel"} <= set(dataset_names())


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "100"])
def test_bad_pca_is_refused(bad):
    with pytest.raises(ValueError, match="pca"):
        load_dataset("moons", pca=bad)


def test_pca_larger_than_the_data_allows_is_refused():
    with pytest.raises(ValueError, match="pca=5 exceeds"):
        load_dataset("moons", pca=5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([[0.0, np.nan]]), "NaN or inf"),
        (np.array([[np.inf, 0.0]]), "NaN or inf"),
        (np.zeros(3), "2D array"),
        (np.zeros((2, 2, 2)), "2D array"),
        (np.array([["a", "b"]]), "numeric"),
        (np.zeros((0, 2)), "empty"),
    ],
)
def test_check_array_names_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        check_array(bad)


def _fake_idx_set(folder: Path, n_train=6, n_test=4, gz=True, shape=(28, 28)):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(n_train + n_test,) + shape).astype(np.uint8)
    labels = rng.randint(0, 10, size=n_train + n_test).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images[:n_train])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels[:n_train])
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images[n_train:])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels[n_train:])
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_fmnist_reads_idx_files_train_then_test(tmp_path, gz):
    images, labels = _fake_idx_set(tmp_path, gz=gz)
    X, y = load_fmnist(data_dir=tmp_path, download=False)
    assert X.shape == (10, 784) and X.dtype == np.float32
    np.testing.assert_allclose(X, images.reshape(10, -1) / 255.0)
    np.testing.assert_array_equal(y, labels)


def test_idx_reader_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + (7).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(tmp_path / "short")


def test_mnist_reads_the_keras_npz_and_mnist5_keeps_digits_0_to_4(tmp_path):
    rng = np.random.RandomState(1)
    parts = {
        "x_train": rng.randint(0, 256, (8, 28, 28), dtype=np.uint8),
        "y_train": np.arange(8) % 10,
        "x_test": rng.randint(0, 256, (4, 28, 28), dtype=np.uint8),
        "y_test": np.array([5, 6, 0, 1]),
    }
    np.savez(tmp_path / "mnist.npz", **parts)
    X, y = load_dataset("mnist", data_dir=tmp_path)
    assert X.shape == (12, 784) and X.max() <= 1.0
    np.testing.assert_array_equal(y, np.concatenate([parts["y_train"], parts["y_test"]]))
    X5, y5 = load_dataset("mnist5", data_dir=tmp_path)
    assert (y5 < 5).all() and len(y5) == int((y < 5).sum())


def test_mnist_falls_back_to_idx_files_and_the_keras_cache(tmp_path, monkeypatch):
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    _fake_idx_set(cache)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    X, y = load_mnist(download=False)
    assert X.shape == (10, 784)


def test_cifar10_reads_the_python_batches_channels_last(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(2)
    planes = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, (3, 3072), dtype=np.uint8)
        planes[name] = data
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [1, 2, 3]}, f)
    X, y = load_cifar10(data_dir=tmp_path, download=False)
    assert X.shape == (18, 3072) and y.tolist() == [1, 2, 3] * 6
    first = planes["data_batch_1"][0]
    # channels last: pixel (0, 0) holds R, G, B from the three 1024-value planes
    np.testing.assert_allclose(X[0, :3] * 255, [first[0], first[1024], first[2048]], atol=1e-3)


@pytest.mark.parametrize(
    "loader, expected", [(load_mnist, "mnist.npz"), (load_fmnist, "idx3-ubyte"), (load_cifar10, "cifar-10-batches-py")]
)
def test_missing_image_files_say_which_and_how_to_get_them(tmp_path, monkeypatch, loader, expected):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr("nfmix.images.DEBIAN_FASHION_MNIST", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match=expected) as error:
        loader(data_dir=tmp_path, download=False)
    assert "load_data()" in str(error.value) or "apt-get install" in str(error.value)


def test_download_is_off_in_tests_by_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="mnist"):
        load_dataset("mnist", data_dir=tmp_path)


def test_smile_file_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("nfmix.data.REPO_DATA_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="smile.csv not found"):
        load_dataset("smile", data_dir=tmp_path)


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="needs apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_from_the_debian_package():
    X, y = load_dataset("fmnist")
    assert X.shape == (70000, 784) and X.dtype == np.float32
    assert np.bincount(y).tolist() == [7000] * 10
    assert X.min() == 0.0 and X.max() == 1.0
    with gzip.open(DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read(4) == bytes([0, 0, 8, 1])


def test_check_array_refuses_complex_values_instead_of_dropping_the_imaginary_part():
    with pytest.raises(ValueError, match="X must be real; got complex dtype complex128"):
        check_array(np.array([[1 + 2j, 0.0]]))
    for bad in (np.ones((2, 2), dtype=bool), np.array([[1, None]], dtype=object)):
        with pytest.raises(ValueError, match="must be numeric"):
            check_array(bad)


def test_idx_images_and_labels_of_different_counts_are_refused(tmp_path):
    images, _ = _fake_idx_set(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[:4])  # 4 images for 6 labels
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte.gz and .*train-labels-idx1-ubyte.gz do not match: "
        r"images of shape \(4, 28, 28\), labels of shape \(6,\)",
    ):
        load_fmnist(data_dir=tmp_path, download=False)
    (tmp_path / "cut").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="cut: IDX header is truncated"):
        read_idx(tmp_path / "cut")


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ("nan,0.3,1", r"column 0 holds NaN or inf \(first at row 1\)"),
        ("0.5,0.3,1", "column 0 is constant"),
        ("0.1,0.3,nan", "labels .* must be whole numbers; row 1 holds nan"),
    ],
)
def test_a_broken_smile_csv_is_refused_naming_the_file_and_column(tmp_path, bad_row, message):
    (tmp_path / "smile.csv").write_text(f"0.5,0.0,0\n{bad_row}\n0.5,0.9,1\n")
    with pytest.raises(ValueError, match=f"smile.csv: {message}"):
        load_dataset("smile", data_dir=tmp_path)
