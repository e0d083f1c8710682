# Two set-up commands on a fresh machine: `make run` and `make test`.
# Everything installs into .venv; nothing outside it is assumed but Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test lint compile benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(PY)
	$(PIP) install -e '.[example]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
	$(PY) -m pip check
	touch $@

$(VENV)/bin/helm $(VENV)/bin/kubectl: | $(VENV)/.dev-installed
	$(PY) tests/tools/fetch_k8s_binaries.py $(VENV)/bin

run: $(VENV)/.run-installed
	$(VENV)/bin/flywheel run training

test: $(VENV)/.dev-installed $(VENV)/bin/helm $(VENV)/bin/kubectl
	$(PY) -m pytest

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

compile: $(VENV)/.run-installed
	$(VENV)/bin/flywheel compile

benchmark: $(VENV)/.dev-installed
	$(PY) benchmarks/local_overhead.py

clean:
	rm -rf $(VENV) .flywheel local_outputs .pytest_cache
