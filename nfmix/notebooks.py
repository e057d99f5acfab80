"""Keep the notebooks honest: ``.py``/``.ipynb`` pairs in sync, per-dataset notebooks generated from one template.

    python -m nfmix.notebooks generate   # point badges and install cells at pyproject's address, sync every pair,
                                         # rewrite notebooks/baselines/*.ipynb from the template
    python -m nfmix.notebooks check      # exit 1, naming the files, when a pair or a generated notebook drifted

The ``.py`` half (jupytext percent format) is the source. The ``.ipynb`` half is what Colab opens; the top-level
ones are committed executed (``python -m nfmix.notebook_outputs``), the generated baseline copies unexecuted.

The project's address lives in one place, ``[project.urls] Repository`` in pyproject.toml. Each notebook's first
cell (its Colab badge) and second (its install cell) are generated from it and from ``nfmix.__version__``: both
name the tag ``v<version>``, so the notebook Colab opens and the package it installs are the same release. This
is a repository tool: an installed wheel has no pyproject.toml.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
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


# Raw pixels (784 or 3072 features): one full-covariance GMM restart already takes minutes.
HEAVY_RAW = ("mnist", "mnist5", "fmnist", "cifar10")
# What the baselines took on this project's 2-core CPU (results/images); the others could not be downloaded here.
MEASURED = {
    ("digits", 0): "k-means took 0.4 s and the GMM 109 s (10 restarts each)",
    ("fmnist", 0): "k-means took 114 s (10 restarts) and the GMM 810 s (1 restart)",
    ("fmnist", 100): "k-means took 10 s and the GMM 2483 s (10 restarts each)",
}
TEMPLATE_NOTE = "This notebook is the template"


def baseline_parameters(dataset: str, pca: int) -> dict:
    """The parameter values a generated baseline notebook declares as its own defaults."""
    values = {"dataset": dataset, "pca": pca}
    if pca == 0 and dataset in HEAVY_RAW:
        values["gmm_n_init"] = 1
    return values


def _with_defaults(source: str, values: dict) -> str:
    """A ``parameters`` cell with new default values; each line keeps its type annotation and comment."""
    lines, seen = [], set()
    for line in source.splitlines():
        match = re.match(r"(\w+)(\s*:\s*\w+\s*=\s*)(.*?)(\s+#.*)?$", line)
        if match and match.group(1) in values:
            value = values[match.group(1)]
            literal = json.dumps(value) if isinstance(value, str) else repr(value)
            line = f"{match.group(1)}{match.group(2)}{literal}{match.group(4) or ''}"
            seen.add(match.group(1))
        lines.append(line)
    if seen != set(values):
        raise ValueError(f"the template's parameters cell has no {sorted(set(values) - seen)}")
    return "\n".join(lines)


def render_baseline(dataset: str, pca: int, folder: Path = NOTEBOOKS) -> str:
    """The per-dataset baseline notebook: the template with the dataset in its own ``parameters`` cell, not run.

    The values are the cell's defaults (not a papermill ``injected-parameters`` cell, which papermill replaces
    on any ``-p``), so ``papermill baselines/fmnist.ipynb out.ipynb -p n_init 2`` still runs F-MNIST.
    """
    import jupytext

    notebook = _paired_ipynb(jupytext.read(folder / f"{BASELINE_TEMPLATE}.py"))
    notebook.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    variant = variant_name(dataset, pca)
    values = baseline_parameters(dataset, pca)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = _with_defaults(parameters.source, values)
    header = notebook.cells[0].source.split("\n\n")
    timing = MEASURED.get(
        (dataset, pca), "these baselines were not run here (the data cannot be downloaded on this project's machines)"
    )
    about = (
        f"This notebook runs the baselines on **{variant}**. Its `parameters` cell declares the dataset, so "
        f"papermill's `-p` options add to it. On this project's 2-core CPU, {timing}."
        + (" The GMM gets one restart here: full covariances on raw pixels are slow." if "gmm_n_init" in values else "")
        + f" Generated from `notebooks/{BASELINE_TEMPLATE}.py` by `python -m nfmix.notebooks generate`: edit"
        " the template, not this copy."
    )
    header = [about if part.startswith(TEMPLATE_NOTE) else part for part in header]
    header[0] = header[0].replace("# 05 · Classic baselines on one dataset", f"# Baselines on {variant}", 1)
    notebook.cells[0].source = "\n\n".join(header).replace(
        f"notebooks/{BASELINE_TEMPLATE}.ipynb", f"notebooks/baselines/{variant}.ipynb"
    )
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


_BADGE_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]*")
_INSTALL_LINE = re.compile(r"%pip install\b.*\bnfmix\b.*$", re.M)  # in a .py source it sits behind "# "


def project_address(pyproject: Path = NOTEBOOKS.parent / "pyproject.toml") -> tuple[str, str]:
    """The repository URL (``[project.urls] Repository``) and the release tag, ``v`` + ``nfmix.__version__``."""
    import tomllib

    from nfmix import __version__

    url = tomllib.loads(pyproject.read_text())["project"]["urls"]["Repository"]
    return url.rstrip("/").removesuffix(".git"), f"v{__version__}"


def colab_link(notebook: str, address: tuple[str, str] | None = None) -> str:
    """The Colab badge's target for ``notebook`` (a path from the repository root, e.g. ``notebooks/01_x.ipynb``)."""
    url, tag = address or project_address()
    host, _, repo = url.partition("://")[2].partition("/")
    if host != "github.com":  # Colab's /github/ route is the only one that opens a notebook by its repository path
        raise ValueError(f"Colab opens notebooks from GitHub only; pyproject's Repository is {url}")
    return f"https://colab.research.google.com/github/{repo}/blob/{tag}/{notebook}"


def install_command(address: tuple[str, str] | None = None) -> str:
    """The install cell's line: the release that matches the notebook, straight from the repository."""
    url, tag = address or project_address()
    return f'%pip install -q "nfmix @ git+{url}@{tag}"'


def write_addresses(folder: Path = NOTEBOOKS) -> list[Path]:
    """Rewrite each ``.py`` source's badge link and install line (in its first two cells) from pyproject."""
    address, changed = project_address(folder.parent / "pyproject.toml"), []
    for source in sources(folder):
        text = source.read_text()
        cells = [m.start() for m in re.finditer(r"^# %%", text, re.M)]
        end = cells[2] if len(cells) > 2 else len(text)  # the first two cells end where the third starts
        link = colab_link(source.with_suffix(".ipynb").relative_to(folder.parent).as_posix(), address)
        head = _BADGE_LINK.sub(lambda _: link, text[:end])  # functions: the URLs are not regex templates
        head = _INSTALL_LINE.sub(lambda _: install_command(address), head)
        if head != text[:end]:
            source.write_text(head + text[end:])
            changed.append(source)
    return changed


def address_problems(folder: Path = NOTEBOOKS) -> list[str]:
    """Every notebook (``.py``, ``.ipynb``, baselines) whose badge or install cell disagrees with pyproject."""
    import jupytext

    address, problems = project_address(folder.parent / "pyproject.toml"), []
    notebooks = [n for s in sources(folder) for n in (s, s.with_suffix(".ipynb"))]
    for path in notebooks + sorted((folder / "baselines").glob("*.ipynb")):
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        cells = jupytext.read(path).cells  # reads a .py's commented "# %pip" back as "%pip"
        link = colab_link(path.with_suffix(".ipynb").relative_to(folder.parent).as_posix(), address)
        links = _BADGE_LINK.findall(cells[0].source) if cells else []
        installs = _INSTALL_LINE.findall(cells[1].source) if len(cells) > 1 else []
        if links != [link]:
            problems.append(f"{path}: Colab badge links {links}, expected [{link!r}]")
        if installs != [install_command(address)]:
            problems.append(f"{path}: install lines {installs}, expected [{install_command(address)!r}]")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfmix.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "check"])
    args = parser.parse_args(argv)
    if args.command == "generate":
        # Sync first so an edited .ipynb reaches its .py, then the addresses go into the .py and back out to both.
        changed = sync_pairs() + write_addresses() + sync_pairs() + generate_baselines()
        print("\n".join(f"wrote {p}" for p in dict.fromkeys(changed)) or "everything was up to date")
        return 0
    problems = [f"out of date: {p}" for p in stale_pairs() + generate_baselines(write=False)] + address_problems()
    for problem in problems:
        print(f"{problem}  (run `make notebooks`)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
