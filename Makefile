# Sluice — `make help` lists the targets. Every target installs what it needs, idempotently.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT_PKGS := nats-server openssh-server docker-registry git
RUN_DIR ?= .run
PYTEST_ARGS ?=

.PHONY: help deps sysdeps venv run up test test-fast lint fmt gen bench conformance clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

sysdeps: ## install the Debian packages the system and the tests run (nats-server, sshd, docker-registry)
	@missing=""; \
	command -v nats-server >/dev/null || missing="$$missing nats-server"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v git >/dev/null || missing="$$missing git"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv with the project installed (.venv/bin/sluice)

deps: sysdeps venv

run: deps ## start the whole system locally in .run/ and seed the image-update demo
	$(VENV)/bin/sluice up --state-dir $(RUN_DIR) --demo

test: deps ## the whole suite: unit, integration (real servers) and e2e, plus kustomize conformance
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: deps ## unit tests only
	$(PY) -m pytest -q -p no:cacheprovider -m unit $(PYTEST_ARGS)

lint: venv ## ruff, mypy (strict on libs), import-linter contracts, generated files up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check libs services tests bench tools
	$(VENV)/bin/mypy libs services tools
	$(VENV)/bin/lint-imports
	$(PY) tools/gen.py --check

fmt: venv ## format the code
	$(VENV)/bin/ruff format libs services tests bench tools
	$(VENV)/bin/ruff check --fix .

gen: venv ## regenerate CRDs (deploy/k8s/crds), event JSON Schemas (docs/events) and docs/settings.md
	$(PY) tools/gen.py

conformance: venv ## run the kustomize conformance corpus against `sluice kustomize build`
	$(PY) ../shared/conformance/kustomize/run.py --cmd "$(abspath $(VENV))/bin/sluice kustomize build {dir}"

bench: deps ## benchmarks (print ratios and percentiles)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) $(RUN_DIR) .mypy_cache .ruff_cache
