# obs-pipelines: `make demo` runs the main job on the embedded default; `make test` runs the suite.
# Both set up everything they need on a fresh Debian machine (Python venv, Debian servers for tests).

VENV      := .venv
BIN       := $(VENV)/bin
PYTHON    ?= python3
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TEST_DEBS := prometheus prometheus-alertmanager prometheus-pushgateway postgresql redis-server chromium

export DAGSTER_HOME := $(CURDIR)/.dagster_home
export OBS_CONFIG   ?= $(CURDIR)/obs.yaml
# The demo: obs.yaml with tier ages short enough that a week of data reaches all three tiers.
DEMO_CONFIG := $(CURDIR)/obs.demo.yaml

.PHONY: env demo test unit ui lint format bench servers clean

env: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/dagster.yaml $@

demo: env
	$(BIN)/obs --config $(DEMO_CONFIG) demo

# The webserver and the daemon (schedules, sensors) on the demo's instance: what `dagster dev`
# starts, as two processes, because `dagster dev` is superseded and warns that ./dagster.yaml is
# unused (it is: $(DAGSTER_HOME)/dagster.yaml links to it). Ctrl-C stops both; UI_PORT=3001 moves it.
# The instance's storage is created first, by one process: the daemon, the webserver and their
# code servers creating a fresh SQLite storage at once can stamp its schema twice.
ui: UI_PORT ?= 3000
ui: env
	@export OBS_CONFIG=$(DEMO_CONFIG); \
	$(BIN)/python -c 'from dagster import DagsterInstance; DagsterInstance.get().dispose()' || exit 1; \
	$(BIN)/dagster-daemon run -w workspace.yaml & daemon=$$!; \
	trap 'kill $$daemon 2>/dev/null; wait $$daemon' EXIT; trap 'exit 130' INT TERM; \
	$(BIN)/dagster-webserver -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

# Servers the tests start on 127.0.0.1 come from Debian; nothing here leaves them running.
servers:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
	    || ! command -v prometheus-alertmanager >/dev/null || ! command -v prometheus-pushgateway >/dev/null \
	    || ! command -v redis-server >/dev/null || ! command -v chromium >/dev/null \
	    || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing $(TEST_DEBS) from Debian"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(TEST_DEBS) >/dev/null; \
	fi

# Three workers on this 2-core machine: most tests wait on servers and subprocesses, and two
# kept the cores 85 % busy (the suite: 11:30 with two, 9:50 with three); whole modules to a
# worker so module fixtures are built once.
test: env servers
	$(BIN)/pytest -n 3 --dist loadfile

# The fast unit tests only: none starts a server, a browser or the CLI in a subprocess
# (tests/conftest.py marks those `integration`); a few still call promtool.
unit: env servers
	$(BIN)/pytest -m "not integration"

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: env
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: env servers
	$(BIN)/python -m bench.ingest_bench

clean:
	rm -rf lake .dagster_home bench/work .pytest_cache
