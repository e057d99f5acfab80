"""``python -m nfmix``: bad arguments stop it before any data is loaded or any model is fitted."""

import pytest

import nfmix.__main__ as cli


@pytest.fixture(autouse=True)
def no_fit(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the CLI went on to load data with bad arguments")

    monkeypatch.setattr(cli, "load_dataset", refuse)


def _error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_zero_epochs_is_refused_rather_than_running_the_presets_epochs(capsys):
    assert "argument --epochs: must be at least 1, got 0" in _error(capsys, "--epochs", "0")
    assert "argument --epochs: expected an integer, got '2.5'" in _error(capsys, "--epochs", "2.5")


def test_a_negative_seed_is_refused(capsys):
    assert "argument --seed: must be at least 0, got -1" in _error(capsys, "--seed", "-1")


def test_an_out_that_cannot_hold_results_is_refused_before_the_fit(tmp_path, capsys):
    a_file = tmp_path / "metrics.txt"
    a_file.write_text("")
    assert f"--out: {a_file} exists and is not a folder" in _error(capsys, "--out", str(a_file))
    assert f"--out: cannot create {a_file / 'sub'}" in _error(capsys, "--out", str(a_file / "sub"))


@pytest.mark.parametrize("name", ["metrics.json", "metrics.csv", "density.png", "density.gif"])
def test_an_output_file_that_is_a_folder_is_refused_before_the_fit(tmp_path, capsys, monkeypatch, name):
    def refuse(*args, **kwargs):
        raise AssertionError("the CLI went on to fit with an output it cannot write")

    monkeypatch.setattr(cli.MAFMixture, "fit", refuse)
    (tmp_path / name).mkdir()
    assert f"--out: {tmp_path / name} exists and is not a file, so the {name} this writes cannot replace it" in _error(
        capsys, "--out", str(tmp_path)
    )


def test_the_cli_prints_no_tensorflow_log_and_a_few_progress_lines_into_a_file(tmp_path):
    import os
    import subprocess
    import sys

    # A user's shell, not the test's: the tests' conftest sets TensorFlow's log level, which a user does not.
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "nfmix", "--epochs", "30", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    for noise in ("absl", "E0000", "I0000", "cuInit", "cuda"):
        assert noise not in done.stderr, done.stderr
    assert done.stderr.replace("\r", "\n").count("epochs:") <= 4  # not one line per check when it is a file
    assert (tmp_path / "out" / "metrics.json").is_file()
