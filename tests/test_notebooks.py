"""The notebooks: pairs in sync, generated copies current, structure, and a papermill smoke run of each."""

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

from nfmix.data import variant_name
from nfmix.images import DEBIAN_FASHION_MNIST
from nfmix.notebooks import BASELINE_VARIANTS, NOTEBOOKS, generate_baselines, sources, stale_pairs

NOISE_IN_OUTPUTS = re.compile(r"absl::InitializeLog|cuda_platform|\d+%\|")
needs_fmnist = pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")


def test_every_pair_is_in_sync_and_every_generated_notebook_is_current():
    assert stale_pairs() == []
    assert generate_baselines(write=False) == []


@pytest.mark.parametrize("source", sources(), ids=lambda p: p.stem)
def test_notebook_structure(source):
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    first = notebook.cells[0].source
    assert first.startswith("# ") and "colab.research.google.com/github" in first
    install = notebook.cells[1].source
    assert "import nfmix" in install and "except ModuleNotFoundError" in install and "%pip install" in install
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and (": str" in tagged[0].source or ": int" in tagged[0].source)


@pytest.mark.parametrize("source", sources(), ids=lambda p: p.stem)
def test_committed_notebooks_carry_their_outputs_tidily(source):
    """GitHub and the site show what a notebook draws only if its executed outputs are committed."""
    path = source.with_suffix(".ipynb")
    notebook = nbformat.read(path, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert outputs, f"{path.name} has no outputs: run `make notebooks`"
    if source.stem != "05_baselines":  # the template draws only after its baselines ran, which it did
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
    assert path.stat().st_size < 3e6, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert not NOISE_IN_OUTPUTS.search(streams), "TensorFlow log lines or progress bars left in the outputs"
    assert not any(o.output_type == "error" for o in outputs)


def test_generated_baseline_notebooks_are_committed_unexecuted():
    for path in (NOTEBOOKS / "baselines").glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), path.name


def _execute(name, tmp_path, **parameters):
    """Run a notebook through papermill into tmp_path (outside the source tree); returns its metric rows."""
    out_dir = tmp_path / "out"
    tmp_path.mkdir(parents=True, exist_ok=True)
    notebook = NOTEBOOKS / f"{name}.ipynb"
    papermill.execute_notebook(
        notebook,
        tmp_path / f"{Path(name).name}.ipynb",
        cwd=str(NOTEBOOKS),
        parameters={**parameters, **({"out_dir": str(out_dir)} if "results" not in name else {})},
        kernel_name="python3",
        progress_bar=False,
    )
    metrics = out_dir / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else []


def _by_method(rows):
    return {row["method"].split(" ")[0]: row for row in rows}


@pytest.mark.slow
def test_derivation_runs(tmp_path):
    _execute("01_derivation", tmp_path, smoke=True)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["two_banana", "pinwheel"])
def test_toy_notebook_beats_random_labels_and_writes_a_gif(tmp_path, dataset):
    rows = _by_method(_execute("02_toy_2d", tmp_path, dataset=dataset, smoke=True))
    assert rows["maf_mixture"]["ari"] > rows["random"]["ari"] + 0.1
    assert (tmp_path / "out" / "density.gif").stat().st_size > 1000
    assert {"final.png", "gmm_vs_flows.png", "density_snapshots.png"} <= {p.name for p in (tmp_path / "out").iterdir()}


@pytest.mark.slow
def test_image_notebook_on_digits(tmp_path):
    rows = _by_method(_execute("03_images", tmp_path, dataset="digits", smoke=True, baseline_n_init=1))
    assert rows["maf_mixture"]["ari"] > rows["random"]["ari"]
    assert (tmp_path / "out" / "samples.png").is_file()


@pytest.mark.slow
@needs_fmnist
def test_image_notebook_on_real_fashion_mnist_pca(tmp_path):
    rows = _by_method(
        _execute("03_images", tmp_path, dataset="fmnist", pca=100, subsample=3000, smoke=True, baseline_n_init=1)
    )
    assert rows["maf_mixture"]["n_clusters"] >= 2 and rows["kmeans"]["ari"] > 0.2


@pytest.mark.slow
@pytest.mark.parametrize("dataset, pca", BASELINE_VARIANTS, ids=lambda v: str(v))
def test_every_generated_baseline_notebook_runs_its_own_dataset_under_an_extra_parameter(
    tmp_path, monkeypatch, dataset, pca
):
    """papermill's ``-p n_init 1`` must add to the notebook's dataset, never replace it (as an injected cell would)."""
    monkeypatch.setenv("NFMIX_DOWNLOAD", "0")  # MNIST and CIFAR-10 cannot be fetched here: they must fail loudly
    variant = variant_name(dataset, pca)
    out_dir = tmp_path / "out"
    run = lambda: papermill.execute_notebook(  # noqa: E731
        NOTEBOOKS / "baselines" / f"{variant}.ipynb",
        tmp_path / f"{variant}.ipynb",
        cwd=str(NOTEBOOKS),
        parameters={"n_init": 1, "subsample": 300, "out_dir": str(out_dir)},
        kernel_name="python3",
        progress_bar=False,
    )
    available = dataset == "digits" or (dataset == "fmnist" and DEBIAN_FASHION_MNIST.is_dir())
    if not available:
        with pytest.raises(papermill.PapermillExecutionError, match=dataset):
            run()
        return
    run()
    rows = json.loads((out_dir / "metrics.json").read_text())
    assert {(row["dataset"], row["pca"]) for row in rows} == {(dataset, pca)}
    assert _by_method(rows)["kmeans"]["ari"] > abs(_by_method(rows)["random"]["ari"])


@pytest.mark.slow
@needs_fmnist
def test_baseline_template_on_real_fashion_mnist(tmp_path):
    rows = _by_method(_execute("05_baselines", tmp_path, dataset="fmnist", subsample=5000, n_init=2))
    assert rows["kmeans"]["ari"] > 0.25 and abs(rows["random"]["ari"]) < 0.02


@pytest.mark.slow
def test_results_notebook_renders_a_sweep_table(tmp_path):
    rows = _execute("02_toy_2d", tmp_path / "toy", dataset="moons", smoke=True)
    sweep_dir = tmp_path / "results" / "toy"
    sweep_dir.mkdir(parents=True)
    pd.DataFrame([{"run": "moons-0", **row} for row in rows]).to_csv(sweep_dir / "runs.csv", index=False)
    executed = tmp_path / "04_results.ipynb"
    papermill.execute_notebook(
        NOTEBOOKS / "04_results.ipynb",
        executed,
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        parameters={"results_dir": str(tmp_path / "results"), "sweeps": "toy"},
        progress_bar=False,
    )
    text = executed.read_text()
    assert "maf_mixture (nfmix)" in text and "moons" in text


@pytest.mark.slow
def test_embedding_notebook_on_digits(tmp_path, monkeypatch):
    pytest.importorskip("umap")
    monkeypatch.setenv("NFMIX_CACHE", str(tmp_path / "cache"))  # papermill's kernel inherits it
    rows = _by_method(_execute("06_embedding", tmp_path, dataset="digits", smoke=True))
    assert rows["kmeans"]["ari"] > 0.5 and rows["maf_mixture"]["n_clusters"] >= 2
    assert {"embedding_clusters.png", "flow_density.png", "contingency.png"} <= {
        p.name for p in (tmp_path / "out").iterdir()
    }
