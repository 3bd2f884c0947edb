# Two commands for a new user: `make run` and `make test`. Each sets itself up.
# storemon needs Python 3.11 (setup.py); python3.11 is preferred when several are installed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
STATE := .storemon

.PHONY: run test lint bench install check-venv sample clean distclean

# A .venv built by another Python (or whose Python is gone) is rebuilt, with a message.
check-venv:
	@if [ -e $(VENV) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then \
		echo "make: $(VENV) was built with $$($(PY) --version 2>&1 | head -1); storemon needs Python 3.11: rebuilding $(VENV)"; \
		rm -rf $(VENV); \
	fi

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: check-venv
	@$(MAKE) --no-print-directory $(STAMP)

run: install
	$(PY) -m storemon_pipeline.serving.serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

# Needs the public dataset beside the repo (../shared/data/loop); see benchmarks/__main__.py.
bench: install
	$(PY) -m benchmarks

sample: install
	$(PY) -m storemon_pipeline.core.sample --stores 300 --days 9 --seed 1 --out data/sample

clean:
	@echo "make clean: removing $(STATE)/ (the local warehouse, Dagster instance, reports and logs)"
	rm -rf $(STATE)

distclean: clean
	@echo "make distclean: also removing $(VENV)/ (the installed packages) and the generated benchmark data"
	rm -rf $(VENV) benchmarks/data
