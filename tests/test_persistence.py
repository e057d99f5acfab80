"""Saving and loading (nfmix.persistence): atomic re-saves, other files kept, edited saves refused, format 1 read."""

import copy
import json
import os
import shutil

import numpy as np
import pytest

from nfmix import MAFMixture, load_dataset, persistence


@pytest.fixture(scope="module")
def data():
    X, y = load_dataset("moons")
    return X[:200], y[:200]


@pytest.fixture(scope="module")
def fitted(data):
    return MAFMixture(2, base="diag", n_init=1, epochs=5, random_state=0).fit(data[0])


@pytest.fixture
def old_and_new(fitted):
    """Two models of one structure that differ in a parameter and in every base location."""
    new = copy.deepcopy(fitted).set_params(tol=0.5)
    new.params_ = {**new.params_, "loc": new.params_["loc"] + 0.25}
    return fitted, new


def assert_is(loaded, model):
    assert loaded.get_params()["tol"] == model.get_params()["tol"]
    for name, value in model.params_.items():
        np.testing.assert_array_equal(loaded.params_[name], value, err_msg=name)


def arrays_name(folder):
    return json.loads((folder / "config.json").read_text()).get("arrays", "arrays.npz")


def edit_config(folder, edit):
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def to_format_1(folder):
    """Rewrite a save as nfmix 0.2.0 wrote it: ``arrays.npz`` without the rescaling, no checksum."""
    with np.load(folder / arrays_name(folder)) as stored:
        arrays = {name: stored[name] for name in stored.files if name not in ("data_min_", "data_range_")}
    (folder / arrays_name(folder)).unlink()
    np.savez(folder / "arrays.npz", **arrays)
    edit_config(folder, lambda config: [config.pop("arrays"), config.pop("checksum"), config.update(format_version=1)])


# ------------------------------------------------------------------ 1. an interrupted save
def test_at_every_step_of_a_re_save_the_folder_holds_the_old_or_the_new_model(old_and_new, tmp_path, monkeypatch):
    old, new = old_and_new
    old.save(tmp_path / "model")
    snapshots = []

    def snapshot_before(function):
        def wrapped(*args, **kwargs):  # the folder as a kill -9 just before this system call would leave it
            snapshots.append(tmp_path / "snapshots" / str(len(snapshots)))
            shutil.copytree(tmp_path / "model", snapshots[-1])
            return function(*args, **kwargs)

        return wrapped

    for name in ("fsync", "replace", "unlink"):
        monkeypatch.setattr(os, name, snapshot_before(getattr(os, name)))
    new.save(tmp_path / "model")
    monkeypatch.undo()
    kinds = []
    for folder in snapshots + [tmp_path / "model"]:
        loaded = MAFMixture.load(folder)
        kinds.append("new" if loaded.tol == new.tol else "old")
        assert_is(loaded, new if kinds[-1] == "new" else old)
    assert kinds[0] == "old" and kinds[-1] == "new" and len(snapshots) >= 4


@pytest.mark.parametrize("failing", ["fsync", "replace"])  # writing the arrays; committing the config
def test_a_save_killed_before_its_commit_leaves_the_old_model_and_the_next_save_works(
    old_and_new, tmp_path, monkeypatch, failing
):
    old, new = old_and_new
    old.save(tmp_path / "model")

    def crash(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(os, failing, crash)
    monkeypatch.setattr(os, "unlink", lambda *args, **kwargs: None)  # a killed process cleans nothing up
    with pytest.raises(OSError, match="killed"):
        new.save(tmp_path / "model")
    monkeypatch.undo()
    leftovers = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert len(leftovers) > 2  # the new arrays file (and the staged config) are left, unreferenced
    assert_is(MAFMixture.load(tmp_path / "model"), old)
    new.save(tmp_path / "model")
    assert_is(MAFMixture.load(tmp_path / "model"), new)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(
        ["config.json", arrays_name(tmp_path / "model")]
    )


def test_a_first_save_killed_before_its_commit_can_be_saved_again(fitted, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "unlink", lambda *args, **kwargs: None)
    with pytest.raises(OSError, match="killed"):
        fitted.save(tmp_path / "model")
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="leftovers of a first save that was interrupted"):
        MAFMixture.load(tmp_path / "model")
    fitted.save(tmp_path / "model")
    assert_is(MAFMixture.load(tmp_path / "model"), fitted)


def test_a_failed_delete_of_the_old_arrays_warns_and_keeps_the_new_model(old_and_new, tmp_path, monkeypatch):
    old, new = old_and_new
    old.save(tmp_path / "model")
    first = arrays_name(tmp_path / "model")

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "unlink", refuse)
    with pytest.warns(RuntimeWarning, match=f"could not delete the unused file .*{first}"):
        new.save(tmp_path / "model")
    monkeypatch.undo()
    assert_is(MAFMixture.load(tmp_path / "model"), new)
    old.save(tmp_path / "model")  # the next save deletes it
    assert not (tmp_path / "model" / first).exists()


def test_a_model_that_an_old_nfmix_left_aside_is_pointed_at(fitted, tmp_path):
    aside = tmp_path / ".model.old.k3j2x9" / "model"
    fitted.save(aside)
    with pytest.raises(FileNotFoundError, match=r"interrupted and the previous model is in .*\.model\.old\.k3j2x9"):
        MAFMixture.load(tmp_path / "model")
    (tmp_path / "model").mkdir()
    with pytest.raises(FileNotFoundError, match="delete the folder .*, then move"):
        MAFMixture.load(tmp_path / "model")


# ------------------------------------------------------------------ 2. other files in the folder
def test_a_re_save_keeps_the_other_files_in_the_folder(old_and_new, tmp_path):
    old, new = old_and_new
    old.save(tmp_path / "model")
    (tmp_path / "model" / "notes.txt").write_text("trained on moons")
    new.save(tmp_path / "model")
    assert (tmp_path / "model" / "notes.txt").read_text() == "trained on moons"
    assert_is(MAFMixture.load(tmp_path / "model"), new)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("no model here")
    with pytest.raises(ValueError, match="holds other files and no saved model"):
        new.save(tmp_path / "other")


# ------------------------------------------------------------------ 3. edited or inconsistent saves
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["fitted"].update(n_features_in_=3), "n_features_in_=3 but the network has 2 input features"),
        (
            lambda c: c["fitted"]["spec"].__setitem__("n_features", 3),
            r"params/loc has shape \(2, 2\), but .* make it \(2, 3\)",
        ),
        (lambda c: c["fitted"]["spec"].__setitem__("hidden_units", [10, 10]), r"params/made_0/kernel_1 has shape"),
        (lambda c: c["fitted"]["spec"].__setitem__("n_blocks", 2), r"lack \['params/made_1/bias_0'"),
        (lambda c: c["params"].update(n_init=3), r"restart_losses_ has shape \(1,\), expected \(3,\)"),
        (lambda c: c["params"].update(n_components=3), r"n_components=3 \(fitted with 2\)"),
        (lambda c: c["fitted"]["spec"].__setitem__("base", "gmm"), r"base='diag' \(fitted with 'gmm'\)"),
        (lambda c: c["fitted"].update(feature_names_in_=["a", "b", "c"]), "feature_names_in_ has 3 names for 2"),
        (lambda c: c["fitted"]["spec"].__setitem__("activation", "relu"), r"activation='tanh' \(fitted with 'relu'\)"),
        (
            lambda c: [c["params"].update(activation="relu"), c["fitted"]["spec"].__setitem__("activation", "relu")],
            "config.json was changed after saving.*checksum mismatch.*re-save the model from a fit",
        ),
        (
            lambda c: [
                c["params"].update(trainable_base=True),
                c["fitted"]["spec"].__setitem__("trainable_base", True),
            ],
            "checksum mismatch",
        ),
        (lambda c: c["params"].update(tol=0.5), "checksum mismatch"),
        (lambda c: c.pop("checksum"), "checksum mismatch"),
    ],
)
def test_an_edited_config_is_refused_naming_the_mismatch(fitted, tmp_path, edit, message):
    fitted.save(tmp_path / "model")
    edit_config(tmp_path / "model", edit)
    with pytest.raises(ValueError, match=message) as error:
        MAFMixture.load(tmp_path / "model")
    assert str(tmp_path / "model") in str(error.value)


def test_edited_arrays_are_refused(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    file = tmp_path / "model" / arrays_name(tmp_path / "model")
    with np.load(file) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["params/loc"] = arrays["params/loc"] + 1  # same shape: only the checksum can tell
    np.savez(file, **arrays)
    with pytest.raises(ValueError, match="checksum mismatch"):
        MAFMixture.load(tmp_path / "model")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda file: file.write_bytes(b"PK\x03\x04 truncated"), r"arrays-[0-9a-f]{16}\.npz cannot be read"),
        (lambda file: file.unlink(), r"arrays-[0-9a-f]{16}\.npz not found: the saved model at .* is incomplete"),
    ],
)
def test_a_damaged_arrays_file_is_named(fitted, tmp_path, damage, message):
    fitted.save(tmp_path / "model")
    damage(tmp_path / "model" / arrays_name(tmp_path / "model"))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        MAFMixture.load(tmp_path / "model")


def test_a_format_1_save_loads_without_rescaling_and_is_still_checked(fitted, data, tmp_path):
    fitted.save(tmp_path / "model")
    to_format_1(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    D = fitted.n_features_in_
    np.testing.assert_array_equal(loaded.data_min_, np.zeros(D))
    np.testing.assert_array_equal(loaded.data_range_, np.ones(D))
    unscaled = copy.deepcopy(fitted)
    unscaled.data_min_, unscaled.data_range_ = np.zeros(D), np.ones(D)
    np.testing.assert_allclose(loaded.score_samples(data[0]), unscaled.score_samples(data[0]), rtol=1e-6)
    loaded.save(tmp_path / "model")  # a re-save writes format 2 and deletes arrays.npz
    assert not (tmp_path / "model" / "arrays.npz").exists()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["format_version"] == 2
    to_format_1(tmp_path / "model")
    edit_config(tmp_path / "model", lambda c: c["fitted"].update(n_features_in_=3))
    with pytest.raises(ValueError, match="n_features_in_=3"):
        MAFMixture.load(tmp_path / "model")


# ------------------------------------------------------------------ 4. parameters changed after fit
def test_sample_and_save_after_set_params_use_the_fitted_structure(fitted, tmp_path):
    model = copy.deepcopy(fitted).set_params(n_components=3)
    points, labels = model.sample(50, random_state=0)
    assert points.shape == (50, 2) and set(labels) <= {0, 1}
    np.testing.assert_array_equal(points, fitted.sample(50, random_state=0)[0])
    with pytest.raises(ValueError, match=r"set_params changed n_components=3 \(fitted with 2\) after fit"):
        model.save(tmp_path / "model")
    model.set_params(n_components=2, hidden_units=(4,), activation="relu")
    with pytest.raises(ValueError, match=r"hidden_units=\(4,\) \(fitted with \(10,\)\), activation='relu'"):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    model.set_params(hidden_units=[10], activation="tanh", verbose=1, epochs=7)
    model.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    assert (loaded.verbose, loaded.epochs, loaded.hidden_units) == (1, 7, [10])


# ------------------------------------------------------------------ 5. init as an array of labels
def test_a_model_started_from_labels_saves_and_loads(data, tmp_path):
    X, y = data
    init = y.astype(np.int32)
    model = MAFMixture(2, n_init=1, epochs=5, init=init, random_state=0).fit(X)
    model.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    restored = loaded.get_params()["init"]
    assert isinstance(restored, np.ndarray) and restored.dtype == np.int32
    np.testing.assert_array_equal(restored, init)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# ------------------------------------------------------------------ 6. the feature rescaling
def test_the_feature_rescaling_round_trips(fitted, data, tmp_path):
    if getattr(fitted, "data_min_", None) is None:
        pytest.skip("this MAFMixture does not rescale features")
    model = copy.deepcopy(fitted)
    model.data_min_, model.data_range_ = model.data_min_ - 0.5, model.data_range_ * 2  # not the identity
    model.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    for name in ("data_min_", "data_range_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
        assert getattr(loaded, name).dtype == np.float64
    np.testing.assert_allclose(loaded.score_samples(data[0]), model.score_samples(data[0]), rtol=1e-6)


def test_the_format_version_is_2():
    assert persistence.FORMAT_VERSION == 2 and 1 in persistence.READABLE_VERSIONS


def test_a_model_fitted_in_the_data_s_units_loads_as_one(data, tmp_path):
    X = data[0] * np.array([50.0, 2.0])  # min-max would rescale these columns; rescale=None must not, after loading
    model = MAFMixture(2, base="diag", n_init=1, epochs=5, rescale=None, random_state=0).fit(X)
    model.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    assert loaded.get_params()["rescale"] is None
    np.testing.assert_array_equal(loaded.data_range_, np.ones(2))
    np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
