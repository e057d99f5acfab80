# Two commands for a fresh machine (see README): `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint notebooks check-notebooks bench clean results

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## The main job: fit a mixture of flows to the embedded two_banana set; figures + metrics in outputs/main
run: $(STAMP)
	$(PY) -m nfmix --dataset two_banana --out outputs/main

## ruff: lint and format check (pyproject.toml; notebooks/ruff.toml holds the notebooks' code cells to 88 columns)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## Unit tests, then every notebook smoke-run through papermill (tests/test_notebooks.py)
test: $(STAMP)
	$(PY) -m pytest -q --durations=15 tests

## Re-pair the notebooks, regenerate the per-dataset baseline notebooks from their template, then execute the
## top-level notebooks in place at their real settings (their outputs are committed; several minutes)
notebooks: $(STAMP)
	$(PY) -m nfmix.notebooks generate
	$(PY) -m nfmix.notebook_outputs

check-notebooks: $(STAMP)
	$(PY) -m nfmix.notebooks check

bench: $(STAMP)
	$(PY) bench/bench_speed.py

## Every result the README and the site show, regenerated from the code: the sweeps (toy, images, embedding), the
## studies (held-out density, defaults, digits, circles, embedding collapse), each study's figure
## (bench/study_figures.py), then the generated tables of the README and the site's pages (bench/readme_tables.py;
## tests/test_readme.py checks them). Resumable, and a no-op when every run is current: a sweep's run or a study's
## row is redone only when missing or made by other code (nfmix.sweep identities; bench/study.py). The sweeps and
## the image studies take many CPU hours: run it from a `git worktree` snapshot.
results: $(STAMP)
	$(PY) -m nfmix.sweep sweeps/toy.yaml
	$(PY) -m nfmix.sweep sweeps/images.yaml
	$(PY) -m nfmix.sweep sweeps/embedding.yaml
	$(PY) bench/defaults_study.py
	$(PY) bench/density_study.py --images
	$(PY) bench/digits_study.py
	$(PY) bench/circles_study.py
	$(PY) bench/embedding_collapse.py
	$(PY) bench/study_figures.py
	$(PY) bench/readme_tables.py

clean:
	rm -rf $(VENV) outputs

## The tutorial site from the committed notebooks and their outputs, not re-run (docs/conf.py): build/book/html.
## results/'s tables and figures go beside the sources (build/book/results), so docs/'s links to ../results work there too.
## BOOK_NOTEBOOKS=DIR builds it from other copies laid out as notebooks/ (say, executed ones). `make book-check`
## then opens every page in Debian's chromium (apt-get install chromium libjs-mathjax). -W: a Sphinx warning (say, a
## notebook linking to a file the site lacks) fails the build.
BOOK_NOTEBOOKS ?= notebooks
DOCS_STAMP := $(VENV)/.installed-docs
.PHONY: book book-check

$(DOCS_STAMP): requirements-docs.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-docs.txt
	touch $(DOCS_STAMP)

book: $(DOCS_STAMP)
	rm -rf build/book && mkdir -p build/book/src/notebooks build/book/results
	cp -r docs/. build/book/src/ && cp -r $(BOOK_NOTEBOOKS)/. build/book/src/notebooks/
	cp -r results/. build/book/results/  # beside src, where docs/'s ../results links point
	$(PY) -m sphinx -b html -q -W --keep-going build/book/src build/book/html

book-check: $(DOCS_STAMP)
	$(PY) tests/browser_check.py build/book/html

## Colab, simulated at the lowest versions pyproject.toml declares (constraints-lowest.txt): the wheel in a fresh venv
## with a second TensorFlow, two notebooks and a unit-test subset run against it (~3 min; .ci/run runs it). `make test`
## runs the same simulation at the pinned versions (tests/test_colab.py).
.PHONY: test-lowest
test-lowest: $(STAMP)
	$(PY) tests/colab_sim.py --lowest
