"""Keep the notebooks honest: ``.py``/``.ipynb`` pairs in sync, per-dataset notebooks generated from one template.

    python -m nfmix.notebooks generate   # sync every pair, rewrite notebooks/baselines/*.ipynb from the template
    python -m nfmix.notebooks check      # exit 1, naming the files, when a pair or a generated notebook drifted

The ``.py`` half (jupytext percent format) is the source. The ``.ipynb`` half is what Colab opens. Committed
notebooks carry no outputs; executed copies go elsewhere (``outputs/``, ``results/``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

from nfmix.data import variant_name

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BASELINE_TEMPLATE = "05_baselines"
# The eight published image variants, plus the offline digits set.
BASELINE_VARIANTS = [(d, p) for d in ("mnist", "mnist5", "fmnist", "cifar10") for p in (0, 100)] + [("digits", 0)]


def _cells(notebook) -> list[tuple]:
    """What matters of a notebook: each cell's type, source and tags (not ids, outputs or other metadata)."""
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in notebook.cells]


def _paired_ipynb(notebook: dict):
    """The ``.ipynb`` for a notebook read from ``.py``, with stable cell ids so regeneration is byte-identical."""
    notebook = copy.deepcopy(notebook)
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
        cell.pop("outputs", None) if cell.cell_type != "code" else cell.update(outputs=[], execution_count=None)
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    return notebook


def sources(folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.py"))


def sync_pairs(folder: Path = NOTEBOOKS) -> list[Path]:
    """``jupytext --sync`` every pair (the newer half wins, as in Jupyter); returns the ``.ipynb`` that changed."""
    from jupytext.cli import jupytext as jupytext_cli

    before = {p: p.read_text() if p.exists() else None for p in (s.with_suffix(".ipynb") for s in sources(folder))}
    jupytext_cli(["--sync", "--quiet"] + [str(s) for s in sources(folder)])
    return [p for p, text in before.items() if p.read_text() != text]


def stale_pairs(folder: Path = NOTEBOOKS) -> list[Path]:
    """Pairs whose ``.ipynb`` cells differ from their ``.py`` source (or that lack an ``.ipynb``)."""
    import jupytext

    stale = []
    for source in sources(folder):
        target = source.with_suffix(".ipynb")
        if not target.exists() or _cells(jupytext.read(source)) != _cells(nbformat.read(target, as_version=4)):
            stale.append(target)
    return stale


def render_baseline(dataset: str, pca: int, folder: Path = NOTEBOOKS) -> str:
    """The per-dataset baseline notebook: the template with papermill's parameters cell injected, not run."""
    import jupytext
    from papermill.parameterize import parameterize_notebook

    template = _paired_ipynb(jupytext.read(folder / f"{BASELINE_TEMPLATE}.py"))
    template.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    for cell in template.cells:
        cell.metadata.setdefault("tags", [])  # papermill reads every cell's tags
    template.metadata["papermill"] = {}
    notebook = parameterize_notebook(template, {"dataset": dataset, "pca": pca}, kernel_name="python3")
    notebook.metadata.pop("papermill", None)
    variant = variant_name(dataset, pca)
    notebook.cells[0].source = notebook.cells[0].source.replace(
        f"notebooks/{BASELINE_TEMPLATE}.ipynb", f"notebooks/baselines/{variant}.ipynb"
    ).replace("# 05 · Classic baselines on one dataset", f"# Baselines on {variant}", 1) + (
        f"\n\n*Generated from `notebooks/{BASELINE_TEMPLATE}.py` by `python -m nfmix.notebooks generate`.*"
    )
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"
        cell.metadata.pop("papermill", None)
        if not cell.metadata.get("tags"):
            cell.metadata.pop("tags", None)
    return nbformat.writes(notebook)


def generate_baselines(folder: Path = NOTEBOOKS, write: bool = True) -> list[Path]:
    """(Re)write ``notebooks/baselines/<variant>.ipynb``; returns those that were missing or out of date."""
    outdated = []
    for dataset, pca in BASELINE_VARIANTS:
        target = folder / "baselines" / f"{variant_name(dataset, pca)}.ipynb"
        text = render_baseline(dataset, pca, folder)
        if not target.exists() or target.read_text() != text:
            outdated.append(target)
            if write:
                target.parent.mkdir(exist_ok=True)
                target.write_text(text)
    expected = {f"{variant_name(d, p)}.ipynb" for d, p in BASELINE_VARIANTS}
    outdated += [p for p in (folder / "baselines").glob("*.ipynb") if p.name not in expected]
    return outdated


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfmix.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "check"])
    args = parser.parse_args(argv)
    if args.command == "generate":
        changed = sync_pairs() + generate_baselines()
        print("\n".join(f"wrote {p}" for p in changed) or "everything was up to date")
        return 0
    problems = stale_pairs() + generate_baselines(write=False)
    for path in problems:
        print(f"out of date: {path}  (run `make notebooks`)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
