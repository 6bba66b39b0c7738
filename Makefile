# Rapport: two commands for a fresh machine.
#   make run   builds and starts the whole platform (SQLite, in-process cache; nothing to install)
#   make test  installs what the tests need (redis-server, PostgreSQL, podman, kubectl, Chromium,
#              a Python venv) and runs them: the Rust tests, then the deployment checks (tests/deploy)

SHELL := /bin/bash
CARGO ?= cargo
VENV  ?= .venv
PY    := $(VENV)/bin/python

.PHONY: run test test-deps test-deploy image lint build fmt clean backtest-ceiling bench bench-models bench-ingest bench-scoring bench-alerting bench-segmentation bench-console bench-pipeline

run:
	$(CARGO) run -p rapport -- up

build:
	$(CARGO) build --workspace --bins

test: test-deps lint build
	@mkdir -p target
	set -o pipefail; $(CARGO) test --workspace --all-targets 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' target/test.log
	$(MAKE) --no-print-directory test-deploy

# The deployment files: overlays validated, settings checked against the binaries, the image
# built from the debug binaries, the dev overlay played and the compose stack run (podman).
test-deploy: test-deps build
	$(PY) -m pytest tests/deploy -q -p no:cacheprovider

# The image from release binaries: localhost/rapport:latest (deploy/image/build --help).
image:
	$(CARGO) build --release --bins
	deploy/image/build

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# redis-server from apt when missing (as root on Debian); PostgreSQL 15 server binaries are
# expected under /usr/lib/postgresql (tests start their own throwaway clusters).
test-deps: $(PY)
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server is missing: install it (e.g. apt-get install redis-server)"; exit 1; fi; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$PG_BIN" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL server binaries are missing: install postgresql or set PG_BIN"; exit 1; fi; }
	@for tool in podman:podman runc:runc kubectl:kubectl chromium:chromium; do \
	  command -v $${tool%%:*} >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $${tool##*:} >/dev/null; \
	  else echo "$${tool%%:*} is missing: install it (the deployment checks need it)"; exit 1; fi; done

$(PY): tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	@touch $(PY)

# How well any model of the purchase history ranks CDNOW's customers by who stops buying: the
# ceiling `rapport backtest --fit` is judged against (README, Backtests).
CDNOW_DIR ?= ../shared/data/cdnow
backtest-ceiling: $(PY)
	$(PY) tests/python/backtest_ceiling.py $(CDNOW_DIR)/CDNOW_master.txt

# Benchmarks print one line per figure, beside a baseline measured in the same run.
bench: bench-models bench-ingest bench-scoring bench-alerting bench-segmentation bench-console bench-pipeline

bench-models: $(PY)
	$(CARGO) run --release -q -p rapport-bench --bin bench-models

bench-ingest: test-deps
	$(CARGO) run --release -q -p rapport-bench --bin bench-ingest

# RAPPORT_BENCH_CUSTOMERS sets the re-score population (default 1,000,000).
bench-scoring: test-deps
	$(CARGO) run --release -q -p rapport-bench --bin bench-scoring

# The four services as separate release processes on PostgreSQL and Redis;
# RAPPORT_BENCH_EVENTS_PER_SEC sets the background load (default 1,000 events/s).
bench-alerting: test-deps
	$(CARGO) build --release -q --bins
	$(CARGO) run --release -q -p rapport-bench --bin bench-alerting

# RAPPORT_BENCH_COPIES sets how many copies of the CDNOW log are graded (default 100).
bench-segmentation: test-deps
	$(CARGO) build --release -q --bin rapport-segmentation
	$(CARGO) run --release -q -p rapport-bench --bin bench-segmentation

# The console's pages for a tenant of RAPPORT_BENCH_CUSTOMERS (default 1,000,000) customers.
bench-console: test-deps
	$(CARGO) run --release -q -p rapport-bench --bin bench-console

# The highest rate of events the four services (separate release processes on PostgreSQL and
# Redis) turn into scores and alerts within a second, held a minute, beside ingestion alone;
# RAPPORT_BENCH_CUSTOMERS (default 20,000), RAPPORT_BENCH_HOLD_SECS (default 60).
bench-pipeline: test-deps
	$(CARGO) build --release -q --bins
	$(CARGO) run --release -q -p rapport-bench --bin bench-pipeline

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV) .rapport
