# Two commands for a new user: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench install sample clean

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m storemon_pipeline.serving.serve

test: install
	$(PY) -m pytest

# Needs the public dataset beside the repo (../shared/data/loop); see benchmarks/__main__.py.
bench: install
	$(PY) -m benchmarks

sample: install
	$(PY) -m storemon_pipeline.core.sample --stores 300 --days 9 --seed 1 --out data/sample

clean:
	rm -rf .storemon
