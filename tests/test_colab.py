"""The notebooks as a Colab user meets them: one project address, and the installed wheel running every notebook.

``pytest -m colab`` selects the slow simulation; ``make test`` and CI run it with the rest.
"""

import re
import shutil
import subprocess
import sys
import zipfile

import pytest

import nfmix
from nfmix.notebooks import (
    NOTEBOOKS,
    address_problems,
    generate_baselines,
    install_command,
    project_address,
    sources,
    sync_pairs,
    write_addresses,
)

REPO = NOTEBOOKS.parent


def test_every_badge_and_install_cell_follows_pyproject():
    url, tag = project_address()
    assert tag == f"v{nfmix.__version__}" and install_command().endswith(f'{url}@{tag}"')
    assert address_problems() == []


def test_a_fork_changes_pyproject_and_make_notebooks_points_every_notebook_at_it(tmp_path):
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy2(REPO / "jupytext.toml", tmp_path)  # the pairing
    url, _ = project_address()
    fork = "https://github.com/someone/nfmix-fork"
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text().replace(url, fork))
    folder = tmp_path / "notebooks"
    notebooks = 2 * len(sources(folder)) + len(list((folder / "baselines").glob("*.ipynb")))
    assert len(address_problems(folder)) == 2 * notebooks  # the badge and the install line of each
    write_addresses(folder)
    sync_pairs(folder)
    generate_baselines(folder)
    assert address_problems(folder) == []
    assert "git+https://github.com/someone/nfmix-fork@v" in (folder / "baselines" / "digits.ipynb").read_text()


def test_the_repository_address_is_written_only_in_pyproject_and_generated_places():
    """A grep of what a commit would hold finds the address only where `make notebooks` writes it, and in
    README.md and the site's landing page, which show the install line."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    url, _ = project_address()
    owner_and_name = url.split("://", 1)[1].split("/", 1)[1]
    address = re.compile(r"github(?:usercontent)?(?:\.com)?/" + re.escape(owner_and_name) + r"\b", re.I)
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    found = set()
    for name in filter(None, listed):
        try:
            if address.search((REPO / name).read_text()):
                found.add(name)
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the working tree
    allowed = {"pyproject.toml", "README.md", "docs/index.md"}
    assert "pyproject.toml" in found
    assert {n for n in found if n not in allowed and not n.startswith("notebooks/")} == set()


def test_the_simulation_would_see_a_notebook_read_the_checkout(tmp_path):
    import colab_sim

    code = colab_sim.AUDIT.format(root=str(REPO)) + f"\nopen({str(REPO / 'README.md')!r}).close()\nprint(_sim_reads)"
    printed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True).stdout
    assert str(REPO / "README.md") in printed


@pytest.mark.slow
@pytest.mark.colab
def test_colab_simulation_runs_every_notebook_from_the_installed_wheel_alone(tmp_path):
    import colab_sim

    outcome = colab_sim.simulate(tmp_path)  # asserts nfmix came from the venv and nothing from the checkout
    print("colab_sim:", {k: round(v) for k, v in outcome["times"].items()})
    assert set(outcome["results"]) == set(colab_sim.SMOKE)
    for name, (report, _) in outcome["results"].items():
        assert report["version"] == nfmix.__version__, name
    rows = re.search(r"(\d+) result rows", outcome["results"]["04_results"][1])
    assert rows and int(rows.group(1)) > 100, "04_results did not read the tables shipped in the wheel"
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "nfmix/datafiles/smile.csv",
        "nfmix/resultfiles/toy/runs.csv",
        "nfmix/resultfiles/images/summary.md",
    } <= set(names) and not any(n.endswith((".png", ".gif")) for n in names)
    shutil.rmtree(tmp_path / "venv")  # 2 GB; pytest keeps the last three tmp_path folders
