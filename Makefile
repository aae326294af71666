# Entry points: `make demo` and `make test` work on a fresh Debian machine; they install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo stack test test-py313 unit integration lint sam-check checkov check build clean bench ssm-document

# The venv is rebuilt when the dependency list or the constraints change.
$(STAMP): pyproject.toml constraints.txt
	@command -v pebble >/dev/null || { echo "installing Debian's pebble (ACME test server)"; \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$sudo apt-get update -qq && $$sudo apt-get install -y -qq pebble; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tests.stack.demo

# The local stack until Ctrl-C, with the hosted zone example.test; `source .stack/env` in another shell.
stack: $(STAMP)
	$(PY) -m tests.stack up --zone example.test --env-file .stack/env

test: $(STAMP)
	$(PY) -m pytest -q

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

# Figures, not tests: this renewer against certbot on the local stack (README, "Speed and scale"); ~15 min.
bench: $(STAMP)
	$(PY) -m bench.run --n 1 10 50 --delay 0 5 --zones 3

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

sam-check: $(STAMP)
	bash .ci/sam-check.sh

# template.yaml's DeliveryCommandDocument embeds acme_renewer/delivery/files.py; run after changing that file.
ssm-document:
	$(PYTHON) .ci/embed-delivery-script.py

# checkov pins a boto3 older than ours, so it lives in a virtualenv of its own.
checkov:
	@[ -x .venv-checkov/bin/checkov ] || { $(PYTHON) -m venv .venv-checkov && \
		.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r .ci/checkov-requirements.txt; }
	bash .ci/checkov.sh

check: lint sam-check checkov test

build: $(STAMP)
	$(VENV)/bin/sam build

clean:
	rm -rf $(VENV) $(VENV313) .venv-checkov .venv-bench-certbot .aws-sam .pytest_cache .mypy_cache .ruff_cache .stack

# The Lambda runtime is python3.13: run the suite there too when pyenv has it (CI does).
PY313 ?= $(shell pyenv prefix 3.13.0 2>/dev/null)/bin/python3
VENV313 := .venv313
test-py313:
	@[ -x "$(PY313)" ] || { echo "no python3.13 found (set PY313=/path/to/python3.13)"; exit 1; }
	@[ -x $(VENV313)/bin/python ] || $(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(VENV313)/bin/python -m pytest -q -p no:cacheprovider
