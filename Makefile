# The whole set-up on a fresh machine with Python 3.11+, Java 17+ and Maven:
#   make demo   — installs what is missing, starts the local stack, plays the seed story
#   make test   — the same installs, then the unit, contract and integration tests
#   make test-cluster — the failure tests on a three-node Kafka cluster (left out of `test`)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LIBS   := .cache/kafka-libs

.PHONY: setup kcat promtool chromium demo test test-cluster unit bench lint schemas stack-up stack-down compose-secrets clean

setup: $(VENV)/.installed $(LIBS)/.resolved kcat promtool chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The official Apache Kafka jars, resolved by Maven from Maven Central (stack/pom.xml).
$(LIBS)/.resolved: stack/pom.xml
	mvn --quiet --batch-mode -f stack/pom.xml dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(LIBS)
	touch $@

# kcat (librdkafka, no Python) is the foreign Kafka client three integration tests use.
# It comes from the system's packages, so it is installed only where root has apt-get.
# A librdkafka older than 2.6.1 cannot log in to Kafka 4 with SCRAM (Debian 12 has 2.0.2):
# stack/kcat_runtime.py then writes .cache/kcat/kcat, kcat on a newer librdkafka.
KCAT_HINT := install it with 'sudo apt-get install kcat' (macOS: 'brew install kcat')
kcat: $(VENV)/.installed
	@command -v kcat >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat) || \
	        echo "kcat could not be installed; $(KCAT_HINT)."; \
	else \
	    echo "kcat is missing; $(KCAT_HINT)."; \
	fi
	@$(BIN)/python stack/kcat_runtime.py

# promtool (Debian's prometheus package) checks and unit-tests the alert rules
# (stack/prometheus, tests/unit/test_alert_rules.py); installed the same way as kcat.
PROMTOOL_HINT := install it with 'sudo apt-get install prometheus' (macOS: 'brew install prometheus')
promtool:
	@command -v promtool >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends prometheus) || \
	        echo "promtool could not be installed; $(PROMTOOL_HINT)."; \
	else \
	    echo "promtool is missing; $(PROMTOOL_HINT)."; \
	fi

# Debian's Chromium and its driver: tests/integration/test_console.py drives the ops console
# in the headless browser with Selenium; installed the same way as kcat and promtool.
CHROMIUM_HINT := install them with 'sudo apt-get install chromium chromium-driver'
chromium:
	@(command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1) || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends chromium chromium-driver) || \
	        echo "chromium could not be installed; $(CHROMIUM_HINT)."; \
	else \
	    echo "chromium or chromedriver is missing; $(CHROMIUM_HINT)."; \
	fi

demo: setup
	$(BIN)/python -m demo

test: setup
	$(BIN)/pytest

# Three more Kafka JVMs: too slow to add to `test` on a 2-core machine, so a target of its own.
test-cluster: setup
	$(BIN)/pytest -m cluster

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit tests/contract

# One run measures every figure of issue 13 (ceilings, FastStream peer, rebuilds, scale
# 100k-400k, latency curve) in ~25-35 min on the 2-core machine; it writes
# docs/bench/bench.json and the PNG charts beside it (matplotlib, from '.[dev]').
bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy hub schemas consumers producers demo
	$(BIN)/lint-imports

schemas: $(VENV)/.installed
	$(BIN)/python -m schemas.export
	$(BIN)/python -m hub.ops.asyncapi
	$(BIN)/python -m hub.ops.acls

stack-up: setup
	$(BIN)/hub stack up

stack-down: $(VENV)/.installed
	$(BIN)/hub stack down

# The Docker secrets of docker-compose.yml, under stack/secrets/ (git-ignored, 0600): run
# before `docker compose up`, as the uid the containers run as (1000 by default).
compose-secrets: $(VENV)/.installed
	$(BIN)/python stack/compose_secrets.py

clean:
	-$(BIN)/hub stack down
	rm -rf .cache $(VENV)
