"""The study scripts' shared scaffolding (bench/study.py): a stopped study resumes, and its summary pairs by seed."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import study  # noqa: E402
from study import RunTable, paired_summary  # noqa: E402

from nfmix import __version__, presets  # noqa: E402


def test_a_reopened_table_knows_its_finished_runs_and_stamps_each_row(tmp_path):
    table = RunTable(tmp_path)
    table.add({"dataset": "iris", "seed": 0, "setup": "a", "ari": 0.5})
    reopened = RunTable(tmp_path)  # as a stopped study starts again
    assert reopened.has("iris", 0, "a") and not reopened.has("iris", 1, "a")
    row = pd.read_csv(tmp_path / "runs.csv").iloc[0]
    assert row["nfmix"] == __version__ and isinstance(row["code"], str) and row["code"]
    reopened.add({"dataset": "iris", "seed": 1, "setup": "a", "ari": 0.25})
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 2 and not list(tmp_path.glob("*.partial"))


def test_an_edit_of_nfmix_makes_every_row_stale_and_its_rerun_replaces_the_old_row(tmp_path, monkeypatch):
    RunTable(tmp_path).add({"dataset": "iris", "seed": 0, "setup": "a", "ari": 0.5})
    monkeypatch.setattr(study, "package_digest", lambda: "an-edited-package")
    edited = RunTable(tmp_path)
    assert not edited.has("iris", 0, "a") and edited.n_stale == 1
    assert edited.freshness().startswith("1 of 1 runs were made by other code")
    edited.add({"dataset": "iris", "seed": 0, "setup": "a", "ari": 0.75})
    rows = pd.read_csv(tmp_path / "runs.csv")
    assert rows[["ari", "package"]].values.tolist() == [[0.75, "an-edited-package"]]
    RunTable(tmp_path).add({"dataset": "wine", "seed": 0, "setup": "a", "ari": 0.5})
    RunTable(tmp_path).add({"dataset": "iris", "seed": 0, "setup": "a", "ari": 0.25})  # replaced in its place
    assert pd.read_csv(tmp_path / "runs.csv")[["dataset", "ari"]].values.tolist() == [["iris", 0.25], ["wine", 0.5]]
    assert RunTable(tmp_path).has("iris", 0, "a") and edited.freshness().startswith("All 1 runs are of nfmix")


def test_rows_from_before_the_package_hash_are_stale(tmp_path):
    old = {"dataset": "iris", "seed": 0, "setup": "a", "ari": 0.5, "nfmix": __version__, "code": "abc"}
    pd.DataFrame([old]).to_csv(tmp_path / "runs.csv", index=False)
    table = RunTable(tmp_path, accept_code_change=True)  # no hash to accept a change from
    assert not table.has("iris", 0, "a") and table.n_stale == 1
    assert not (tmp_path / "accepted-code-changes.log").exists()


def test_accept_code_change_stamps_rows_of_this_version_current_and_logs_it(tmp_path, monkeypatch):
    table = RunTable(tmp_path)
    table.add({"dataset": "iris", "seed": 0, "setup": "a", "ari": 0.5})
    before = table.package
    monkeypatch.setattr(study, "package_digest", lambda: "a-comment-edit")
    accepted = RunTable(tmp_path, accept_code_change=True)
    assert accepted.has("iris", 0, "a") and accepted.n_stale == 0
    assert pd.read_csv(tmp_path / "runs.csv")["package"].tolist() == ["a-comment-edit"]
    log = (tmp_path / "accepted-code-changes.log").read_text()
    assert f"accepted package {before} -> a-comment-edit for 1 row(s)" in log


def test_the_summary_pairs_by_seed_and_ranks_a_missing_score_as_the_worst():
    seeds = range(6)
    done = pd.DataFrame(
        [{"dataset": "d", "seed": s, "setup": "base", "ari": 0.5} for s in seeds]
        + [{"dataset": "d", "seed": s, "setup": "ours", "ari": 0.6 + 0.01 * s} for s in seeds]
        + [{"dataset": "d", "seed": s, "setup": "broken", "ari": np.nan if s else 0.9} for s in seeds]
    )
    table = paired_summary(done, "base", {"ari": "ARI"}, versus="B").set_index("set-up")
    assert table.loc["ours", "n"] == 6 and table.loc["ours", "ARI - B"] == "+0.125"
    assert table.loc["ours", "p ARI"] == "0.031"  # higher on all six seeds: 2 / 2**6
    # Five NaNs count as the worst score seen (0.5), not as missing: no difference on them, one win.
    assert table.loc["broken", "ARI - B"] == "+0.067" and float(table.loc["broken", "p ARI"]) == 1.0
    assert table.loc["base", "p ARI"] == ""  # no test of the baseline against itself


class Fitted:  # stands in for MAFMixture: a study's bookkeeping, not its fits, is under test
    def __init__(self, n_components, **settings):
        self.n_components = n_components

    def fit(self, X):
        self.labels_ = np.arange(len(X)) % self.n_components
        self.history_ = {"loss": np.zeros(4001)}
        return self

    def score(self, X):
        return 0.0

    def score_samples(self, X):
        return np.zeros(len(X))

    def predict(self, X):
        return np.arange(len(X)) % self.n_components


def test_the_circles_study_names_every_row_it_fits_and_resumes_by_seed(tmp_path, monkeypatch, capsys):
    import circles_study

    monkeypatch.setattr(circles_study, "MAFMixture", Fitted)
    monkeypatch.setattr(circles_study, "fit_baseline", lambda method, X, k, seed: (np.arange(len(X)) % k, None))
    assert circles_study.main(["--seeds", "0", "--out", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(rows["setup"]) == sorted(circles_study.SETUPS)
    monkeypatch.setattr(circles_study, "one_seed", lambda *args: pytest.fail("a finished seed was fitted again"))
    capsys.readouterr()
    circles_study.main(["--seeds", "0", "--out", str(tmp_path)])
    assert "All 17 runs are of nfmix" in (tmp_path / "summary.md").read_text()
    assert "runs.csv: nothing to fit; All 17 runs are of nfmix" in capsys.readouterr().out


def test_the_digits_study_writes_the_committed_table_s_columns_and_resumes(tmp_path, monkeypatch, capsys):
    import digits_study

    monkeypatch.setattr(digits_study, "MAFMixture", Fitted)
    monkeypatch.setattr(digits_study, "baseline_labels", lambda method, X, k, seed: np.arange(len(X)) % k)
    monkeypatch.setattr(digits_study, "load", lambda name: (np.random.RandomState(0).rand(40, 3), np.arange(40) % 10))
    assert digits_study.main(["--seeds", "0", "--out", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "runs.csv")
    committed = pd.read_csv(Path(digits_study.OUT) / "runs.csv")
    assert list(rows.columns) == list(committed.columns)  # one table, whichever code wrote a row
    digits, fmnist = (rows[rows["dataset"] == digits_study.DATASETS[key]] for key in ("digits", "fmnist"))
    assert sorted(digits["setup"]) == sorted(["kmeans", "gmm", *digits_study.SETUPS])
    assert sorted(fmnist["setup"]) == ["gmm", "kmeans", "nfmix image set-up", "rescaled to [0, 1]"]
    assert len(rows) == len(digits) + len(fmnist) and set(rows["seed"]) == {0}
    monkeypatch.setattr(digits_study, "MAFMixture", lambda *args, **kwargs: pytest.fail("a finished row was refitted"))
    capsys.readouterr()
    digits_study.main(["--seeds", "0", "--out", str(tmp_path)])
    assert "nothing to fit" in capsys.readouterr().out


def test_the_density_study_fits_every_set_up_on_small_sets_and_the_preset_alone_on_images(tmp_path, monkeypatch):
    import density_study

    umap = "fmnist UMAP-10 (10,000)"
    rng = np.random.RandomState(0)
    monkeypatch.setattr(density_study, "MAFMixture", Fitted)
    monkeypatch.setattr(
        density_study, "image_sets", lambda seed, names: {umap: (rng.normal(size=(60, 3)), np.arange(60) % 2)}
    )
    density_study.main(["--seeds", "0", "--sets", "iris", umap, "--images", "--out", str(tmp_path)])
    rows = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(rows.loc[rows["dataset"] == "iris", "setup"]) == sorted(
        [density_study.GMM, *density_study.MAIN_SETUPS]
    )
    assert sorted(rows.loc[rows["dataset"] == umap, "setup"]) == sorted(density_study.IMAGE_SETUPS)


def test_a_figure_marks_a_per_seed_gap_stale_when_either_of_its_rows_is(tmp_path, monkeypatch):
    import study_figures

    table = RunTable(tmp_path / "density")
    for seed in (0, 1):
        table.add({"dataset": "iris", "seed": seed, "setup": study_figures.GMM, "test loglik": 1.0})
        table.add({"dataset": "iris", "seed": seed, "setup": "diag", "test loglik": 1.5})
    frame = pd.read_csv(table.path)
    frame.loc[(frame["seed"] == 1) & (frame["setup"] == study_figures.GMM), "package"] = "older"
    frame.to_csv(table.path, index=False)
    monkeypatch.setattr(study_figures, "RESULTS", tmp_path)
    gaps = study_figures._per_seed_gap(study_figures._runs("density"), "test loglik", {"defaults": "diag"})
    assert gaps.sort_values("seed")["set-up"].tolist() == ["defaults", f"defaults, {study_figures.STALE}"]
    assert gaps["gap"].tolist() == [0.5, 0.5]


def test_the_readme_reads_the_embedding_preset_row_by_the_name_the_collapse_study_gives_it():
    import embedding_collapse
    import readme_tables

    assert readme_tables.EMBEDDING_PRESET == embedding_collapse.PRESET
    assert embedding_collapse.SETUPS[embedding_collapse.PRESET][0] == presets.NFMIX_EMBEDDING  # the preset, as is
