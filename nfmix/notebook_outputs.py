"""Execute the top-level notebooks in place, at their real settings, and keep only outputs a reader needs.

    python -m nfmix.notebook_outputs            # every notebooks/0*.ipynb
    python -m nfmix.notebook_outputs 02_toy_2d  # one

The committed ``.ipynb`` files carry their outputs, so GitHub (and the tutorial site, built without running
anything) shows every figure. Each notebook runs with its own defaults (no injected parameters, so its cells stay
those of its ``.py`` source) from a scratch folder, so nothing it writes lands in the repository. Afterwards the
outputs are tidied: TensorFlow's start-up log lines and progress bars go, and so does papermill's per-cell
metadata. ``docs/guide/notebooks.md`` records when and at which commit the notebooks were last executed.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXECUTION_PAGE = NOTEBOOKS.parent / "docs" / "guide" / "notebooks.md"
EXECUTED_MARK = re.compile(r"(<!-- executed -->).*?(<!-- /executed -->)", re.S)
# Lines that say nothing to a reader: TensorFlow/absl start-up logs and tqdm progress bars.
NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d\d|.*\d+%\|.*\|)")


def tidy_outputs(notebook) -> None:
    """Drop log noise and progress bars (text or widgets), empty streams, and papermill's metadata."""
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)  # tqdm's progress widgets: nothing to see once the run is over
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if not cell.metadata.get("tags"):  # papermill tags every cell []; jupytext would copy that into the .py
            cell.metadata.pop("tags", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                lines = re.split(r"(?<=\n)|\r", output.text)
                output.text = "".join(line for line in lines if line.strip() and not NOISE.match(line))
                if not output.text.strip():
                    continue
            elif "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
                continue
            kept.append(output)
        cell.outputs = kept


def execute(name: str, timeout: int = 3600) -> Path:
    """Run ``notebooks/<name>.ipynb`` with its defaults and write it back with tidy outputs."""
    import papermill

    path = NOTEBOOKS / f"{name}.ipynb"
    with tempfile.TemporaryDirectory() as scratch:
        executed = Path(scratch) / path.name
        papermill.execute_notebook(
            path, executed, cwd=scratch, kernel_name="python3", progress_bar=False, execution_timeout=timeout
        )
        notebook = nbformat.read(executed, as_version=4)
    tidy_outputs(notebook)
    nbformat.write(notebook, path)
    return path


ENTRY = re.compile(r"`(\w+)` on (\d{4}-\d\d-\d\d) from `([^`]+)`")


def record_execution(names: list[str], page: Path = EXECUTION_PAGE) -> str:
    """Write, between the page's ``<!-- executed -->`` marks, when and at which commit each notebook was last
    executed: ``names`` get today's date and this commit, the others keep theirs."""
    # "-dirty" when the executed sources were not committed yet (they usually are not: they go in the next commit).
    commit = (
        subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=NOTEBOOKS.parent
        ).stdout.strip()
        or "unknown"
    )
    text = page.read_text()
    marked = EXECUTED_MARK.search(text)
    if not marked:
        raise ValueError(f"{page} has no <!-- executed --> ... <!-- /executed --> marks to write into")
    runs = {name: (date, at) for name, date, at in ENTRY.findall(marked.group(0))}
    runs.update({name: (datetime.date.today().isoformat(), commit) for name in names})
    listed = "; ".join(f"`{name}` on {date} from `{at}`" for name, (date, at) in sorted(runs.items()))
    note = f"Last executed by `make notebooks`: {listed}."
    page.write_text(EXECUTED_MARK.sub(lambda m: f"{m.group(1)}{note}{m.group(2)}", text))
    return note


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nfmix.notebook_outputs", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: every notebooks/0*.ipynb)")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    for name in names:
        print(f"executing {name} ...", flush=True)
        path = execute(name)
        print(f"  {path}: {path.stat().st_size / 1e6:.2f} MB")
    print(record_execution(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
