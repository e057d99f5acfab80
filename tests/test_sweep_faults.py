"""Faults from the audit (issue #23): stale identities, two sweeps at once, bad sweep files, broken run files and
bad command lines, each met with a clear word instead of a silent result or a traceback. No real fits: papermill
is faked (``fake_notebook_runs``)."""

import fcntl
import json
from pathlib import Path

import pandas as pd
import pytest
from test_sweep import SMALL, fake_notebook_runs  # noqa: F401 - a fixture

from nfmix import presets, sweep
from nfmix.records import record_metrics
from nfmix.sweep import ACCEPTED_LOG, LOCK_FILE, SweepError, execute_run, inspect, load_sweep, main, plan, run_sweep

TWO_SEEDS = SMALL.replace("[moons, circles]", "[moons]")  # 02_toy_2d, moons, seeds 0 and 1


@pytest.fixture
def finished(tmp_path, fake_notebook_runs):  # noqa: F811 - the imported fixture
    """A sweep file, its results folder and its two runs, both finished (by the fake papermill)."""
    path, results = tmp_path / "two.yaml", tmp_path / "results"
    path.write_text(TWO_SEEDS)
    assert run_sweep(path, results)["ran"] == 2
    runs = plan(load_sweep(path), results)
    assert [inspect(run) for run in runs] == [("done", ""), ("done", "")]
    return path, results, runs


def _planned(path, results):
    return plan(load_sweep(path), results)


def _edit_source(monkeypatch, *names):
    """As if ``names`` (files of nfmix/) had been edited since the runs were made."""
    hashes = sweep.source_hashes()
    edited = {**hashes, **{name: "0" * 16 for name in names}}
    monkeypatch.setattr(sweep, "source_hashes", lambda: edited)


# ---------------------------------------------------------------------------------------------- 1. identity
def test_an_edited_preset_makes_a_finished_run_stale_and_is_named(finished, monkeypatch, capsys):
    path, results, _ = finished  # 02_toy_2d runs, which resolve the "2d" kind of preset "nfmix"
    monkeypatch.setitem(presets.PRESETS["nfmix"]["2d"], "n_init", 4)  # the preset's contents, not its name
    for run in _planned(path, results):
        assert inspect(run) == ("stale", "preset nfmix/2d n_init 10 -> 4")
    run_sweep(path, results, dry_run=True)
    out = capsys.readouterr().out
    assert "2 stale run(s) to rerun, changed since they ran: preset nfmix/2d n_init 10 -> 4" in out


def test_an_edited_kind_of_the_preset_that_the_notebook_does_not_resolve_leaves_it_done(finished, monkeypatch):
    path, results, _ = finished
    monkeypatch.setitem(presets.PRESETS["nfmix"]["embedding"], "init_epochs", 1)
    for run in _planned(path, results):
        assert inspect(run) == ("done", "") and set(run["identity"]["presets"]["nfmix"]) == {"2d"}


def test_an_edited_preset_the_run_does_not_name_leaves_it_done(finished, monkeypatch):
    path, results, _ = finished  # 02_toy_2d runs, on its default preset "nfmix"
    monkeypatch.setitem(presets.PRESETS["density"]["2d"], "n_iter_no_change", 99)
    for run in _planned(path, results):
        assert inspect(run) == ("done", "") and set(run["identity"]["presets"]) == {"nfmix"}


def test_a_run_json_with_every_preset_is_compared_on_its_own_preset_and_can_be_accepted(finished, monkeypatch):
    path, results, runs = finished
    recorded = Path(runs[0]["out_dir"]) / "run.json"  # as run.json was written when it held every preset
    every_preset = json.loads(json.dumps(presets.PRESETS))
    every_preset["density"]["2d"]["n_iter_no_change"] = 1
    every_preset["nfmix"]["embedding"]["init"] = "random"  # a kind of its own preset that 02_toy_2d does not use
    recorded.write_text(json.dumps({**json.loads(recorded.read_text()), "presets": every_preset}))
    _edit_source(monkeypatch, "presets.py")
    seed0, _ = _planned(path, results)
    assert inspect(seed0) == ("stale", "nfmix source changed: presets.py")
    sweep.accept_code_changes([seed0], results / "small")
    assert inspect(_planned(path, results)[0]) == ("done", "")


def test_an_edited_source_file_makes_a_finished_run_stale_and_is_named(finished, monkeypatch):
    path, results, _ = finished
    _edit_source(monkeypatch, "model.py", "fitting.py")
    for run in _planned(path, results):
        assert inspect(run) == ("stale", "nfmix source changed: fitting.py, model.py")


def test_the_identity_hashes_every_package_source_file():
    hashes = sweep.source_hashes()
    assert set(hashes) == {p.name for p in Path(sweep.__file__).parent.glob("*.py")} and "model.py" in hashes
    assert all(len(h) == 16 for h in hashes.values())


def test_a_run_json_from_before_the_hashes_is_stale_and_says_so(finished):
    path, results, runs = finished
    recorded = Path(runs[0]["out_dir"]) / "run.json"
    old = {k: v for k, v in json.loads(recorded.read_text()).items() if k not in ("presets", "package")}
    recorded.write_text(json.dumps(old))
    assert inspect(runs[0]) == ("stale", "identity predates preset/source hashes")


def test_accept_code_change_keeps_code_only_stale_runs_and_logs_it(finished, monkeypatch, capsys):
    path, results, (seed0, seed1) = finished
    recorded = Path(seed1["out_dir"]) / "run.json"  # seed 1 was also made with another parameter
    recorded.write_text(
        json.dumps(
            {
                **json.loads(recorded.read_text()),
                "parameters": {**seed1["identity"]["parameters"], "snapshot_every": 30},
            }
        )
    )
    _edit_source(monkeypatch, "model.py")
    assert main([str(path), "--results", str(results), "--accept-code-change", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (
        f"sweep small: accepted the change to model.py for 1 finished run(s); logged in "
        f"{results / 'small' / ACCEPTED_LOG}" in out
    )
    assert "(1 done, 1 stale, 0 broken, 0 failed, 0 missing)" in out
    seed0, seed1 = _planned(path, results)
    assert inspect(seed0) == ("done", "")
    assert json.loads((Path(seed0["out_dir"]) / "run.json").read_text())["package"]["model.py"] == "0" * 16
    assert inspect(seed1) == ("stale", "nfmix source changed: model.py, snapshot_every 30 -> 20")
    (line,) = (results / "small" / ACCEPTED_LOG).read_text().splitlines()
    assert line.endswith(f"Z accepted nfmix source change (model.py) for 1 run(s): {seed0['id']}")
    assert line[:4].isdigit() and seed1["id"] not in line


def test_accept_code_change_with_nothing_to_accept_says_so(finished, capsys):
    path, results, _ = finished
    run_sweep(path, results, dry_run=True, accept_code_change=True)
    assert "no finished run differs from its plan only in nfmix's source" in capsys.readouterr().out
    assert not (results / "small" / ACCEPTED_LOG).exists()


# ---------------------------------------------------------------------------------------------- 2. locking
def test_a_run_another_process_is_running_is_skipped_not_run(tmp_path, fake_notebook_runs, capsys):  # noqa: F811
    path, results = tmp_path / "one.yaml", tmp_path / "results"
    path.write_text(TWO_SEEDS.replace("[0, 1]", "[0]"))
    (run,) = _planned(path, results)
    Path(run["out_dir"]).mkdir(parents=True)
    with open(Path(run["out_dir"]) / LOCK_FILE, "a") as other:  # as another sweep's process would hold it
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert execute_run(run) == {
            "id": run["id"],
            "status": "skipped",
            "message": f"run {run['id']} is being run by another process; skipped",
        }
        outcome = run_sweep(path, results)
        assert outcome["ran"] == 0 and not outcome["failures"] and len(outcome["skipped"]) == 1
    assert not fake_notebook_runs and not (Path(run["out_dir"]) / "run.json").exists()
    assert f"run {run['id']} is being run by another process; skipped" in capsys.readouterr().out
    assert execute_run(run)["status"] == "done" and len(fake_notebook_runs) == 1  # the lock is free again
    # Planned before the other process finished it: not run twice.
    assert execute_run(run)["message"] == f"run {run['id']} was finished by another process; skipped"
    assert len(fake_notebook_runs) == 1


# ---------------------------------------------------------------------------------------------- 3. unknown keys
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            ("grid:", "grd:"),
            r"small.yaml, line 5: unknown key 'grd' in experiment 1 \(did you mean 'grid'\?\); "
            r"known keys: notebook, grid, parameters",
        ),
        (
            ("name: small", "name: small\nseeds: 3"),
            r"line 3: unknown key 'seeds' at the top level; "
            r"known keys: name, description, experiments",
        ),
        (("experiments:", "experiment:"), r"line 3: unknown key 'experiment' at the top level \(did you mean "),
        (
            ("      smoke: true", "      smoke: true\n      smoke: false"),
            r"line 10: key 'smoke' appears twice in "
            r"experiment 1's parameters",
        ),
        (
            ("    grid:\n      dataset: [moons, circles]\n      seed: [0, 1]", "    grid:"),
            r"experiment 1's 'grid' must be a mapping of parameter names",
        ),
    ],
)
def test_an_unknown_or_repeated_key_in_a_sweep_file_is_refused_with_its_line(tmp_path, edit, message):
    path = tmp_path / "small.yaml"
    assert edit[0] in SMALL
    path.write_text(SMALL.replace(*edit))
    with pytest.raises(SweepError, match=message):
        load_sweep(path)


def test_every_shipped_sweep_file_passes_the_key_check():
    for path in sorted((Path(sweep.REPO) / "sweeps").glob("*.yaml")):
        assert load_sweep(path)["experiments"]


# ---------------------------------------------------------------------------------------------- 4. broken files
def test_broken_run_files_are_reported_rerun_and_never_crash_aggregation(finished, capsys):
    path, results, (seed0, seed1) = finished
    metrics = Path(seed0["out_dir"]) / "metrics.json"
    cases = [
        (metrics, "[]", "metrics.json holds no rows"),
        (metrics, '[{"ari": 0.', "metrics.json is not valid JSON"),
        (metrics, '{"ari": 1}', "metrics.json holds a JSON dict, not a list"),
        (Path(seed0["out_dir"]) / "run.json", '{"notebook": "02_t', "run.json is not valid JSON"),
    ]
    for broken, text, reason in cases:
        good = broken.read_text()
        broken.write_text(text)
        assert inspect(seed0) == ("broken", reason)
        assert run_sweep(path, results, only="seed=1$")["ran"] == 0  # aggregates with the broken run left out
        assert pd.read_csv(results / "small" / "runs.csv")["run"].tolist() == [seed1["id"]]
        out = capsys.readouterr().out
        assert "(1 done, 0 stale, 1 broken, 0 failed, 0 missing); running 0" in out
        assert f"1 broken run(s) to rerun, because: {reason}" in out
        run_sweep(path, results, dry_run=True)
        assert f"run  [broken ] {seed0['id']}" in capsys.readouterr().out
        broken.write_text(good)
    metrics.write_text("[]")
    assert run_sweep(path, results)["ran"] == 1 and inspect(seed0) == ("done", "")  # redone like a missing run


def test_recording_no_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no metric rows to record"):
        record_metrics([], tmp_path)
    assert not (tmp_path / "metrics.json").exists()


# ---------------------------------------------------------------------------------------------- 5. command line
@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(TWO_SEEDS)
    return path


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--only", "["], "error: --only '[' is not a valid regular expression (unterminated character set"),
        (["--set", "epochs=["], "error: --set 'epochs=[': the value is not valid YAML (expected the node content"),
        (["--jobs", "0"], "error: --jobs must be at least 1, got 0"),
        (["--jobs", "-2"], "error: --jobs must be at least 1, got -2"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    sweep_file,
    tmp_path,
    capsys,
    fake_notebook_runs,  # noqa: F811
    arguments,
    message,
):
    with pytest.raises(SystemExit) as exit_:
        main([str(sweep_file), "--results", str(tmp_path / "results"), *arguments])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "results").exists()


def test_results_that_is_a_file_is_refused_up_front(sweep_file, tmp_path, capsys, fake_notebook_runs):  # noqa: F811
    a_file = tmp_path / "results.txt"
    a_file.write_text("")
    for results in (a_file, a_file / "deeper"):
        with pytest.raises(SystemExit):
            main([str(sweep_file), "--results", str(results)])
        assert f"error: --results: {a_file} exists and is not a folder" in capsys.readouterr().err
    assert not fake_notebook_runs


def test_execute_run_never_raises_even_where_its_folder_cannot_be(tmp_path, fake_notebook_runs):  # noqa: F811
    a_file = tmp_path / "results"
    a_file.write_text("")
    path = tmp_path / "small.yaml"
    path.write_text(TWO_SEEDS)
    run = _planned(path, a_file)[0]
    outcome = execute_run(run)
    assert outcome["status"] == "failed" and "Not a directory" in outcome["error"]
    assert "its .failed marker could not be written" in outcome["error"] and not fake_notebook_runs


def test_a_run_naming_an_unknown_preset_is_refused_with_the_known_ones(finished):
    _, _, runs = finished
    with pytest.raises(SweepError, match="preset 'nope' is not one of nfmix.presets: paper, nfmix, density"):
        sweep.presets_used(runs[0]["notebook"], {"preset": "nope"}, runs[0]["identity"]["code"])
