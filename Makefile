# Two commands do everything: `make demo` and `make test`. Both set up first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-stamp
GENERATOR_DIR := models/smollm2-135m-instruct
INDEX_DIR ?= index
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup redis-server prometheus chromium demo serve test test-unit test-integration lint format typecheck bench clean

setup: redis-server prometheus chromium $(STAMP) $(GENERATOR_DIR)/.prepared.json

# Debian's redis-server, where missing: the Redis store's integration tests start a real one.
redis-server:
	command -v redis-server >/dev/null || (SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server)

# Debian's Prometheus, where missing: a test scrapes the running service with ops/prometheus.yml.
prometheus:
	command -v prometheus >/dev/null || (SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO apt-get install -y -qq --no-install-recommends prometheus)

# Debian's Chromium, where missing: Playwright drives it (executable_path) for the chat page's
# browser tests; no browser is downloaded.
chromium:
	command -v chromium >/dev/null || (SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO apt-get install -y -qq --no-install-recommends chromium)

# Re-runs only when a requirements file changes; pip itself is a no-op for satisfied pins.
# The image's install step (deploy/docker/steps.sh: exact pins, torch kept at the CPU wheel,
# torchvision & co. removed), then the dev tools.
$(STAMP): requirements.txt requirements-cpu.txt requirements-dev.txt constraints-cpu.txt \
		deploy/docker/steps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	VARIANT=cpu PIP="$(PIP) --quiet --disable-pip-version-check" sh deploy/docker/steps.sh install
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints-cpu.txt
	touch $@

$(GENERATOR_DIR)/.prepared.json: $(STAMP)
	$(PY) -m pipelines.prepare_generator --out $(GENERATOR_DIR)

demo: setup
	$(PY) demo.py --index-dir $(INDEX_DIR) --port $(PORT)

serve: setup
	test -f $(INDEX_DIR)/CURRENT || $(PY) build_index.py --index-dir $(INDEX_DIR)
	$(PY) serve_index.py --index-dir $(INDEX_DIR) --port $(PORT)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest -m "not integration"

test-integration: setup
	$(PY) -m pytest -m integration

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) bench/build_throughput.py

clean:
	rm -rf $(INDEX_DIR) .pytest_cache .ruff_cache .mypy_cache
