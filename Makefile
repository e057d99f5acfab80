# Two commands for a fresh machine (see README): `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test notebooks check-notebooks bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## The main job: fit a mixture of flows to the embedded two_banana set; figures + metrics in outputs/main
run: $(STAMP)
	$(PY) -m nfmix --dataset two_banana --out outputs/main

## Unit tests, then every notebook smoke-run through papermill (tests/test_notebooks.py)
test: $(STAMP)
	$(PY) -m pytest -q tests

## Re-pair the notebooks and regenerate the per-dataset baseline notebooks from their template
notebooks: $(STAMP)
	$(PY) -m nfmix.notebooks generate

check-notebooks: $(STAMP)
	$(PY) -m nfmix.notebooks check

bench: $(STAMP)
	$(PY) bench/bench_speed.py

clean:
	rm -rf $(VENV) outputs
