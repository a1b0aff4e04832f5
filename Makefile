# eolab: the two commands are `make up` and `make test` (see README.md).
SHELL := /bin/bash
# The system Python first: multiuser mode and Slurm jobs run the venv as other users, and a
# Python under a private home (pyenv in /root) is not executable for them.
PYTHON ?= $(shell ls /usr/bin/python3.11 2>/dev/null || command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# EOLAB_DEMO_SIZE (as documented for `eolab up`) works here too.
DEMO_SIZE ?= $(or $(EOLAB_DEMO_SIZE),default)
PYTEST_ARGS ?=
# Test processes for unit + integration (pytest-xdist; tests/conftest.py groups the modules).
TEST_WORKERS ?= 2

.PHONY: up down status test install sysdeps demo-data clean help

help:
	@echo "make up        install everything, generate demo data, start the stack on 127.0.0.1"
	@echo "make down      stop what 'make up' started"
	@echo "make status    show what runs"
	@echo "make test      install and run the whole test suite"
	@echo "make demo-data generate the demo data (DEMO_SIZE=small|default)"

# Debian packages: apt-get only for what is missing; needs root or sudo.
# Each entry is "how to tell it is there" = "package".
define SYSDEP_CHECKS
ls /usr/share/postgresql/*/extension/postgis.control=postgresql-15-postgis-3
command -v chromium=chromium
command -v slurmctld=slurm-wlm
command -v munged=munge
command -v sudo=sudo
command -v npm=npm
$(PYTHON) -c "import ensurepip"=python3.11-venv
endef
export SYSDEP_CHECKS
sysdeps:
	@missing=""; while IFS='=' read -r check pkg; do [ -n "$$check" ] || continue; \
	  eval "$$check" >/dev/null 2>&1 || missing="$$missing $$pkg"; done <<< "$$SYSDEP_CHECKS"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "eolab: error: missing system packages:$$missing (run make as root, or apt-get install them)" >&2; exit 1; fi; \
	  echo "installing system packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# configurable-http-proxy and the country map's front-end files (parquet-wasm, geoarrow-js), pinned by
# hub_config/package-lock.json.
hub_config/node_modules/.installed: hub_config/package.json hub_config/package-lock.json
	npm ci --prefix hub_config --no-audit --no-fund --loglevel=error
	touch $@

# The local OIDC provider for the OIDC login tests, pinned by hub_config/oidc/provider/package-lock.json.
hub_config/oidc/provider/node_modules/.installed: hub_config/oidc/provider/package.json hub_config/oidc/provider/package-lock.json
	npm ci --prefix hub_config/oidc/provider --no-audit --no-fund --loglevel=error
	touch $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,test]"
	touch $@

install: sysdeps $(VENV)/.installed hub_config/node_modules/.installed

demo-data: $(VENV)/.installed
	EOLAB_DEMO_SIZE=$(DEMO_SIZE) $(BIN)/eolab demo-data --size $(DEMO_SIZE)

up: install
	EOLAB_DEMO_SIZE=$(DEMO_SIZE) $(BIN)/eolab up

down:
	@if [ -x $(BIN)/eolab ]; then $(BIN)/eolab down; else echo "nothing to stop (no $(VENV))"; fi

status: $(VENV)/.installed
	$(BIN)/eolab status

# Unit and integration tests in TEST_WORKERS processes: much of their time is spent waiting for servers
# and subprocesses, so two processes share the 2 cores better than one. Browser tests in a process of
# their own: the event loops that notebook and hub tests leave behind make Playwright's sync API refuse
# to start. The 20 slowest tests are listed (where the time goes).
test: install hub_config/oidc/provider/node_modules/.installed
	@status=0; \
	$(BIN)/ruff check . || status=$$?; \
	$(BIN)/python -m pytest tests/unit tests/integration -n $(TEST_WORKERS) --no-loadscope-reorder \
		--durations=20 $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS) || status=$$?; \
	exit $$status

clean: down
	rm -rf .eolab
