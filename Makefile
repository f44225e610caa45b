# Two commands on a fresh machine: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CCTV := $(VENV)/bin/cctv
STAMP := $(VENV)/.installed

.PHONY: help setup venv jars clickhouse media browser up down status topics demo test test-unit lint bench clean

help:
	@echo "make demo    - the whole system on this machine, a simulated December 2563 (Ctrl-C stops it)"
	@echo "               make demo DEMO_SECONDS=60: a bounded run that ends with a summary"
	@echo "make test    - unit + integration + e2e tests against real Kafka and ClickHouse engines"
	@echo "make bench   - benchmarks, written to docs/BENCHMARKS.md"
	@echo "make up/down - start/stop the local Kafka broker (var/kafka) and apply the topics"
	@echo "make setup   - venv, Kafka jars, Debian's clickhouse-server, ffmpeg + GStreamer RTSP, chromium (done on first use anyway)"

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) (first run takes a few minutes)..."
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

jars: venv
	$(PY) -m infra.kafka.broker fetch

clickhouse:
	bash infra/clickhouse/install.sh

# ffmpeg + GStreamer's RTSP server: the prober's tests serve real camera streams with them.
media:
	bash infra/media/install.sh

# Debian's chromium + chromium-driver: the dashboard's browser test drives them headless.
browser:
	bash infra/browser/install.sh

setup: venv jars clickhouse media browser

up: venv
	$(PY) -m infra.kafka.broker up
	$(CCTV) topics apply

down:
	@if [ -x $(PY) ]; then $(PY) -m infra.kafka.broker down; fi

status: venv
	$(PY) -m infra.kafka.broker status

# Everything the demo runs: the venv, Kafka's jars, Debian's clickhouse-server (chDB allows one
# process per directory, and the sink writes while the dashboard reads) and the media tools for
# the prober's camera streams (without them the demo says so and runs without the prober).
# DEMO_SECONDS=N: N seconds of simulation, then a summary and exit 0 when figures reached
# ClickHouse and the dashboard answered. DEMO_ARGS: more options of `cctv demo --help`.
DEMO_SECONDS ?=
DEMO_ARGS ?=
demo: venv jars clickhouse media
	$(CCTV) demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS)) $(DEMO_ARGS)

test: setup
	$(PY) -m pytest tests

test-unit: venv
	$(PY) -m pytest tests/unit

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv jars
	$(PY) -m benchmarks

clean: down
	rm -rf var
