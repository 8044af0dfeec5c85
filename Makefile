# Two commands set up and run everything: `make up` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
VENV := .venv
PYTHON := $(VENV)/bin/python
# The engine's environment: the CLI and plugins found or built, no network, and unless the
# caller chose otherwise state on a local file backend in .pulumi-state/ with the
# development passphrase (see scripts/engine.sh env; README "State and secrets").
ENGINE_ENV = eval "$$(scripts/engine.sh env)"
PULUMI_STACK = $(ENGINE_ENV); mkdir -p .pulumi-state; \
	pulumi stack select --create $(STACK) --non-interactive >/dev/null

.PHONY: help setup venv system engine agents kubernetes up run preview test bench cluster clean
help:
	@echo "make up                      set up what is missing, pulumi up the dev stack, run its plan locally"
	@echo "make test                    the whole test suite"
	@echo "make preview STACK=<name>    pulumi preview of a stack (POLICY=1 adds the policy pack)"
	@echo "make run STACK=<name>        run a stack's plan on this machine (SPEED=600, ARGS=... for larry run)"
	@echo "make bench                   the benchmarks in bench/"
	@echo "make cluster STACK=<name>    a local Kubernetes cluster with the stack's nodes (scripts/cluster.sh)"

setup: venv system engine agents

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	@$(PYTHON) -m pip install -q --upgrade pip
	@$(PYTHON) -m pip install -q -e '.[dev]'
	@touch $@

system:
	@scripts/install-system.sh

engine: venv
	@scripts/engine.sh ensure

# The agent CLIs the profiles run and the tests drive (pinned, cached in ~/.cache/larry-agents).
agents:
	@scripts/agents.sh ensure

# The local cluster's binaries, built from the Go module proxy (cached in ~/.cache/larry-cluster),
# and the images a real node runs, built without a registry (~/.cache/larry-images): the cluster
# tests start their own cluster from them.
kubernetes:
	@scripts/cluster.sh ensure
	@scripts/images.sh ensure

up: setup
	@$(PULUMI_STACK); pulumi up --yes --skip-preview --stack $(STACK)
	@$(MAKE) --no-print-directory run STACK=$(STACK)

SPEED ?= 300
run: venv system
	@$(VENV)/bin/larry run --stack $(STACK) --speed $(SPEED) $(ARGS)

preview: setup
	@$(PULUMI_STACK); pulumi preview --stack $(STACK) $(if $(POLICY),--policy-pack policies)

# Two xdist workers: much of the suite waits (real time, the engine, the API server), and the
# cluster tests keep to one worker (tests/conftest.py groups them).
test: setup kubernetes
	@$(PYTHON) -m pytest -n 2

bench: setup
	@for script in bench/bench_*.py; do echo "== $$script"; $(PYTHON) $$script; done
	@echo "== bench/bench_engine.sh --skip-cold (the cold build: bench/bench_engine.sh)"; bench/bench_engine.sh --skip-cold

# Builds (once, cached) and starts a local cluster; `scripts/cluster.sh env` says how to use it.
cluster: venv kubernetes
	@scripts/cluster.sh up --stack $(STACK)

clean:
	rm -rf rendered .larry-runs .pytest_cache
