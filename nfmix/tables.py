"""The committed sweep tables (``results/<sweep>/runs.csv``, ``summary.csv``, ``summary.md``), wherever nfmix runs.

They ship inside the wheel as the package ``nfmix.resultfiles`` (figures stay in the repository), so
``04_results`` draws them in Colab after a plain ``pip install`` with no checkout.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

REPO_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def shipped_results_dir() -> Path:
    """The folder of shipped tables: the installed package's copy, else (an editable checkout) ``results/``."""
    # A namespace package (no __init__.py), so its folder is its search location, not a __file__.
    spec = find_spec("nfmix.resultfiles")
    folders = [Path(f) for f in (spec.submodule_search_locations or []) if Path(f).is_dir()] if spec else []
    return folders[0] if folders else REPO_RESULTS_DIR


def results_file(sweep: str, filename: str = "runs.csv", results_dir: str = "") -> str | Path | None:
    """``<results_dir>/<sweep>/<filename>``: ``""`` means the shipped tables, a URL is returned as it is (pandas
    reads it), and a local file that does not exist gives None."""
    if "://" in str(results_dir):
        return f"{str(results_dir).rstrip('/')}/{sweep}/{filename}"
    path = Path(results_dir or shipped_results_dir()) / sweep / filename
    return path if path.is_file() else None
