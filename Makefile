# Two set-up commands on a fresh machine: `make run` and `make test`.
# Everything installs into .venv; nothing outside it is assumed but Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test test-public-scripts lint compile benchmark clean

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

# checkov pins an older boto3 and parliament needs pkg_resources: a venv of their own keeps
# the project's dependencies clean (pip check) while the tests still run both for real.
SECURITY_TOOLS := $(VENV)/security-tools
$(SECURITY_TOOLS)/bin/checkov: | $(PY)
	$(PYTHON) -m venv $(SECURITY_TOOLS)
	$(SECURITY_TOOLS)/bin/python -m pip --disable-pip-version-check -q install checkov==3.3.30 parliament==1.6.4 'setuptools<81'

run: $(VENV)/.run-installed
	$(VENV)/bin/flywheel run training

# Two workers, one per core of CI's machine; a test file stays on one worker (its module fixtures
# are set up once, its tests run in order).
test: $(VENV)/.dev-installed $(VENV)/bin/helm $(VENV)/bin/kubectl $(SECURITY_TOOLS)/bin/checkov
	$(PY) -m pytest -n 2 --dist loadfile

# Public SageMaker scripts, byte for byte from clones that are not committed here (no GitHub in
# CI): SAGEMAKER_PUBLIC_CHECKOUTS names the folder of clones (tests/contract_corpus/README.md).
test-public-scripts: $(VENV)/.dev-installed
	$(if $(SAGEMAKER_PUBLIC_CHECKOUTS),,$(error set SAGEMAKER_PUBLIC_CHECKOUTS to a folder of clones: see tests/contract_corpus/README.md))
	SAGEMAKER_PUBLIC_CHECKOUTS=$(SAGEMAKER_PUBLIC_CHECKOUTS) $(PY) -m pytest -rs -k public tests/contract_corpus

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

compile: $(VENV)/.run-installed
	$(VENV)/bin/flywheel compile

benchmark: $(VENV)/.dev-installed
	$(PY) benchmarks/local_overhead.py

clean:
	rm -rf $(VENV) .flywheel local_outputs .pytest_cache
