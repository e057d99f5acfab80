"""A small sweep, end to end: two toy sets x 2 seeds of the real 2D notebook with tiny epochs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nfmix.records import record_metrics
from nfmix.sweep import load_sweep, plan, run_sweep, state

SMALL = """
name: small
experiments:
  - notebook: 02_toy_2d
    grid:
      dataset: [moons, circles]
      seed: [0, 1]
    parameters:
      smoke: true
      snapshot_every: 20
"""


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def _done(path, results):
    return sum(state(run) == "done" for run in plan(load_sweep(path), results))


def test_sweep_runs_in_parallel_resumes_and_aggregates(sweep_file, tmp_path):
    results = tmp_path / "results"
    command = [sys.executable, "-m", "nfmix.sweep", str(sweep_file), "--results", str(results), "--jobs", "1"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while _done(sweep_file, results) < 1 and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)  # killed midway: one run finished, the rest did not
    process.wait()
    finished = _done(sweep_file, results)
    assert 1 <= finished < 4

    outcome = run_sweep(sweep_file, results, jobs=2)
    assert outcome["planned"] == 4 - finished and not outcome["failures"]
    assert _done(sweep_file, results) == 4

    tidy = pd.read_csv(results / "small" / "runs.csv")
    assert set(tidy["dataset"]) == {"moons", "circles"} and set(tidy["seed"]) == {0, 1}
    methods = {"maf_mixture (nfmix)", "random", "kmeans", "gmm", "spectral", "ward", "hdbscan"}
    assert set(tidy["method"]) == methods and len(tidy) == 4 * len(methods)
    mixture = tidy[tidy["method"] == "maf_mixture (nfmix)"]
    random = tidy[tidy["method"] == "random"]
    assert mixture["ari"].mean() > random["ari"].mean() + 0.05  # even a 60-epoch run beats random labels
    summary = (results / "small" / "summary.md").read_text()
    assert "| moons | maf_mixture (nfmix) | 2 |" in summary and "best-likelihood ari" in summary
    assert (results / "small" / "figures" / "moons_nfmix_density.gif").is_file()

    again = run_sweep(sweep_file, results, jobs=2)
    assert again["planned"] == 0  # nothing is redone


def test_a_misspelled_parameter_stops_the_sweep_before_any_run(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(SMALL.replace("snapshot_every", "snapshot_evry"))
    with pytest.raises(ValueError, match="no parameter 'snapshot_evry'.*snapshot_every"):
        run_sweep(path, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(SMALL.replace("[moons, circles]", "[moons, no_such_set]").replace("[0, 1]", "[0]"))
    results = tmp_path / "results"
    outcome = run_sweep(path, results, jobs=2)
    assert [f["id"] for f in outcome["failures"]] == ["02_toy_2d__dataset=no_such_set__seed=0"]
    assert "unknown dataset 'no_such_set'" in outcome["failures"][0]["error"]
    assert Path(outcome["failures"][0]["notebook"]).is_file()
    assert _done(path, results) == 1
    retried = run_sweep(path, results, retry_failed=True)
    assert retried["planned"] == 1 and len(retried["failures"]) == 1


def test_the_same_sweep_runs_on_a_dask_cluster(sweep_file, tmp_path):
    pytest.importorskip("dask.distributed")
    results = tmp_path / "results"
    sweep_file.write_text(SMALL.replace("[moons, circles]", "[moons]"))
    outcome = run_sweep(sweep_file, results, jobs=2, dask="")
    assert outcome["ran"] == 2 and not outcome["failures"]
    assert _done(sweep_file, results) == 2


@pytest.fixture
def fake_notebook_runs(monkeypatch):
    """papermill without a kernel: each "run" writes metrics whose ARI is its snapshot_every / 100."""
    import papermill

    executed = []

    def execute(notebook, output, parameters, **kwargs):
        executed.append(dict(parameters))
        row = {
            "dataset": parameters["dataset"],
            "seed": parameters["seed"],
            "method": "maf_mixture (nfmix)",
            "purity": 1.0,
            "ari": parameters["snapshot_every"] / 100,
            "nmi": 1.0,
            "accuracy": 1.0,
            "loss": 1.0,
        }
        record_metrics([row], parameters["out_dir"])

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return executed


def test_a_changed_parameter_reruns_a_finished_run_and_never_summarises_the_stale_result(
    tmp_path, fake_notebook_runs, capsys
):
    path, results = tmp_path / "one.yaml", tmp_path / "results"
    path.write_text(SMALL.replace("[moons, circles]", "[moons]").replace("[0, 1]", "[0]"))
    assert run_sweep(path, results, overrides={"snapshot_every": 30})["ran"] == 1
    assert run_sweep(path, results)["ran"] == 1  # --set no longer given: the 30 run is stale
    assert "snapshot_every 30 -> 20" in capsys.readouterr().out
    assert pd.read_csv(results / "small" / "runs.csv")["ari"].tolist() == [0.2]

    path.write_text(path.read_text().replace("snapshot_every: 20", "snapshot_every: 40"))  # a fixed one edited
    assert run_sweep(path, results, retry_failed=True)["ran"] == 0  # not rerun, and not reported as current
    assert "(no finished runs)" in (results / "small" / "summary.md").read_text()
    assert run_sweep(path, results)["ran"] == 1
    assert pd.read_csv(results / "small" / "runs.csv")["ari"].tolist() == [0.4]

    (run,) = plan(load_sweep(path), results)
    (Path(run["out_dir"]) / "run.json").unlink()  # a run made before identities were recorded
    assert state(run) == "stale" and len(fake_notebook_runs) == 3


def test_malformed_sweep_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SMALL.replace("seed: [0, 1]", "seed: [0, 1"))
    with pytest.raises(ValueError, match=r"bad.yaml, line 8: not valid YAML \(.*flow sequence started on line 7\)"):
        load_sweep(path)


def test_an_experiment_without_a_notebook_is_refused(tmp_path):
    path = tmp_path / "no_notebook.yaml"
    path.write_text(SMALL.replace("- notebook: 02_toy_2d\n    grid:", "- grid:"))
    with pytest.raises(ValueError, match="experiment 1 needs a 'notebook:'"):
        load_sweep(path)


def test_a_value_of_the_wrong_type_stops_the_sweep_before_any_run(tmp_path, fake_notebook_runs):
    path = tmp_path / "typed.yaml"
    path.write_text(SMALL + "      learning_rate: 1\n")  # an int where a float is declared is fine
    run_sweep(path, tmp_path / "ok", dry_run=True)
    path.write_text(SMALL + "      epochs: six\n")
    with pytest.raises(
        ValueError,
        match=r"run 02_toy_2d__dataset=moons__seed=0: parameter epochs='six' is str, "
        r"but 02_toy_2d.ipynb expects int",
    ):
        run_sweep(path, tmp_path / "results")
    with pytest.raises(ValueError, match="parameter smoke=1 is int, but 02_toy_2d.ipynb expects bool"):
        run_sweep(path, tmp_path / "results", overrides={"epochs": 6, "smoke": 1})
    assert not fake_notebook_runs and not (tmp_path / "results").exists()


def test_a_sweep_name_cannot_write_outside_results(tmp_path):
    path = tmp_path / "escape.yaml"
    path.write_text(SMALL.replace("name: small", "name: ../../x"))
    with pytest.raises(ValueError, match=r"sweep name '../../x' must be a plain folder name"):
        run_sweep(path, tmp_path / "a" / "b" / "results", dry_run=True)


def test_only_runs_the_matching_runs_and_archived_rows_stand_in_for_the_rest(tmp_path, fake_notebook_runs):
    path, results = tmp_path / "two.yaml", tmp_path / "results"
    path.write_text(SMALL.replace("[moons, circles]", "[moons]"))
    ids = [run["id"] for run in plan(load_sweep(path), results)]
    archived = [
        {
            "run": run_id,
            "nfmix": "0.0.1",
            "dataset": "moons",
            "seed": seed,
            "method": "maf_mixture (nfmix)",
            "ari": 0.9,
            "purity": 1.0,
            "nmi": 1.0,
            "accuracy": 1.0,
            "loss": 1.0,
        }
        for seed, run_id in enumerate(ids)
    ]
    (results / "small").mkdir(parents=True)
    pd.DataFrame(archived + [{**archived[0], "run": "a run no longer planned"}]).to_csv(
        results / "small" / "archive.csv", index=False
    )
    assert run_sweep(path, results, only="seed=1$")["ran"] == 1
    assert [p["seed"] for p in fake_notebook_runs] == [1]
    tidy = pd.read_csv(results / "small" / "runs.csv").sort_values("seed")
    from nfmix import __version__

    # seed 0 is still the archived row (its version says so); seed 1 is the fresh run; the unplanned row is gone
    assert tidy[["seed", "nfmix", "ari"]].values.tolist() == [[0, "0.0.1", 0.9], [1, __version__, 0.2]]
