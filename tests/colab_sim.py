"""Colab, simulated: nfmix's wheel in a fresh virtual environment, its notebooks run from outside the checkout.

    python tests/colab_sim.py            # the pinned set (requirements.txt), every top-level notebook
    python tests/colab_sim.py --lowest   # the lowest declared versions (constraints-lowest.txt): two notebooks
                                         # and a subset of the unit tests against the installed package

As a Colab user meets it: the wheel is built from the files a clone has; a new venv (no system site-packages)
gets nfmix's dependencies and ipykernel, but not nfmix; it becomes a Jupyter kernel; papermill runs each notebook
in it from a temporary folder, and the notebook's own install cell runs ``%pip install``, of the wheel instead of
the GitHub tag (the one difference from Colab, whose network this machine lacks). Each run gets a first cell that
records every file the kernel opens under the checkout, and a last cell that reports them, with where nfmix and
every module came from. tests/test_colab.py runs the pinned simulation; .ci/run runs --lowest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
KERNEL = "nfmix-colab-sim"
# The smoke parameters tests/test_notebooks.py uses; 02 runs smile, whose data file ships inside the wheel, and 04
# keeps results_dir="" (the tables shipped inside the wheel).
SMOKE = {
    "01_derivation": {"smoke": True},
    "02_toy_2d": {"dataset": "smile", "smoke": True},
    "03_images": {"dataset": "digits", "smoke": True, "baseline_n_init": 1},
    "04_results": {},
    "05_baselines": {"dataset": "digits", "n_init": 1},
}
LOWEST_NOTEBOOKS = ["02_toy_2d", "04_results"]
LOWEST_TESTS = ["tests/test_model.py", "-k", "density or predict or save"]

# Added before a notebook's first cell: note every file opened under the checkout (audit hooks see open() and
# io.open_code(), so imports and data reads alike).
AUDIT = """import os, sys
_sim_reads = set()
def _sim_audit(event, args, root={root!r}):
    try:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            if path == root or path.startswith(root + os.sep):
                _sim_reads.add(path)
    except Exception:
        pass
sys.addaudithook(_sim_audit)"""
# Added after its last cell.
REPORT = """import json, sys, nfmix
print("COLAB_SIM", json.dumps({{"nfmix": nfmix.__file__, "version": nfmix.__version__, "reads": sorted(_sim_reads),
    "modules": sorted(f for f in (getattr(m, "__file__", None) for m in list(sys.modules.values()))
                      if isinstance(f, str) and f.startswith({root!r} + "/")),
    "sys_path": [p for p in sys.path if p.startswith({root!r} + "/") or p == {root!r}]}}))"""


def _run(args, **kwargs):
    print("+", " ".join(map(str, args)), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def _name(requirement: str) -> str:
    return re.split(r"[\s=<>!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def constraints(path: Path, lowest: bool) -> Path:
    """requirements.txt's pins (extras dropped: pip refuses them in constraints), overridden by the lowest set."""
    sets = [REPO / "requirements.txt"] + ([REPO / "constraints-lowest.txt"] if lowest else [])
    pins = {}
    for lines in (f.read_text().splitlines() for f in sets):
        for line in (re.sub(r"\[.*?\]", "", line_.split("#")[0]).strip() for line_ in lines):
            if line:
                pins[_name(line)] = line
    path.write_text("\n".join(pins.values()) + "\n")
    return path


def build_wheel(work: Path) -> Path:
    """The wheel, built from a copy of what a clone would hold (tracked files and new ones git does not ignore)."""
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
    source = work / "clone"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", source])
    return next((work / "dist").glob("nfmix-*.whl"))


def clean_env(venv: Path, pins: Path) -> dict:
    """The environment of everything run in the venv: no PYTHONPATH or other venv, no PATH entry in the checkout;
    the kernel finds its spec in the venv, and its ``%pip`` may take nothing but what is installed already."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
    env.update(
        PATH=os.pathsep.join([str(venv / "bin")] + path),
        JUPYTER_PATH=str(venv / "share" / "jupyter"),
        PIP_CONSTRAINT=str(pins),
        PIP_NO_INDEX="1",
        NFMIX_DOWNLOAD="0",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def make_venv(work: Path, wheel: Path, pins: Path, extra=()) -> Path:
    """A new venv with nfmix's dependencies (as pip resolves the wheel's ranges under ``pins``) but not nfmix."""
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    # --no-compile: byte-compiling all of TensorFlow took 4 of the 5 minutes here; imports compile what they use.
    _run([python, "-m", "pip", "install", "-q", "--no-compile", "-c", pins, wheel, "ipykernel", *extra])
    _run([python, "-m", "pip", "uninstall", "-q", "-y", "nfmix"])  # the notebook's install cell brings it
    _run([python, "-m", "ipykernel", "install", "--prefix", venv, "--name", KERNEL])
    return venv


def run_notebook(name: str, work: Path, wheel: Path, env: dict, parameters: dict) -> tuple[dict, str]:
    """Run ``notebooks/<name>.ipynb`` as Colab would (install cell pointed at the wheel); returns its report and
    the executed notebook's text."""
    from nfmix.notebooks import install_command

    notebook = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    install = notebook.cells[1]
    assert install_command() in install.source, f"{name}: its install cell is not the generated one"
    install.source = install.source.replace(install_command(), f'%pip install -q "nfmix @ {wheel.as_uri()}"')
    notebook.cells.insert(0, nbformat.v4.new_code_cell(AUDIT.format(root=str(REPO)), metadata={"tags": []}))
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT.format(root=str(REPO)), metadata={"tags": []}))
    folder = work / name
    folder.mkdir()
    nbformat.write(notebook, folder / "input.ipynb")
    out_dir = {"out_dir": str(folder / "out")} if name != "04_results" else {}
    _run(
        [
            sys.executable,
            "-m",
            "papermill",
            folder / "input.ipynb",
            folder / "output.ipynb",
            "-k",
            KERNEL,
            "--cwd",
            folder,
            "--no-progress-bar",
            "-y",
            json.dumps({**parameters, **out_dir}),
        ],
        env=env,
        cwd=folder,
    )
    text = (folder / "output.ipynb").read_text()
    executed = nbformat.reads(text, as_version=4)
    printed = "".join(o.get("text", "") for o in executed.cells[-1].get("outputs", []))
    return json.loads(printed.split("COLAB_SIM", 1)[1]), text


def check(report: dict, venv: Path, name: str) -> None:
    """The notebook imported nfmix from the venv and read nothing from the checkout."""
    assert Path(report["nfmix"]).resolve().is_relative_to(venv.resolve()), f"{name}: nfmix from {report['nfmix']}"
    for what in ("reads", "modules", "sys_path"):
        assert not report[what], f"{name} used the checkout ({what}): {report[what][:5]}"


def simulate(work: Path, lowest: bool = False, notebooks=None) -> dict:
    """Build, install, run; returns each notebook's report and executed text, and the time of each step."""
    times, started = {}, time.monotonic()
    wheel = build_wheel(work)
    times["wheel"] = time.monotonic() - started
    pins = constraints(work / "constraints.txt", lowest)
    venv = make_venv(work, wheel, pins, extra=["pytest"] if lowest else [])
    times["venv"] = time.monotonic() - started - times["wheel"]
    env, results = clean_env(venv, pins), {}
    for name in notebooks or (LOWEST_NOTEBOOKS if lowest else list(SMOKE)):
        start = time.monotonic()
        results[name] = run_notebook(name, work, wheel, env, SMOKE[name])
        check(results[name][0], venv, name)
        times[name] = time.monotonic() - start
    if lowest:  # against the installed package: importlib mode puts nothing of the checkout on sys.path
        start = time.monotonic()
        _run(
            [
                venv / "bin" / "python",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--import-mode=importlib",
                REPO / LOWEST_TESTS[0],
                *LOWEST_TESTS[1:],
            ],
            env=env,
            cwd=work,
        )
        times["unit tests"] = time.monotonic() - start
    versions = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {"results": results, "times": times, "versions": versions}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lowest", action="store_true", help="the lowest declared versions (constraints-lowest.txt)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="nfmix-colab-sim-"))
    try:
        outcome = simulate(work, lowest=args.lowest)
        wanted = {_name(line) for line in (REPO / "constraints-lowest.txt").read_text().splitlines()}
        print("".join(line + "\n" for line in outcome["versions"].splitlines() if _name(line) in wanted), end="")
        print("colab_sim:", ", ".join(f"{k} {v:.0f} s" for k, v in outcome["times"].items()))
    finally:
        print(f"kept {work}") if args.keep else shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
