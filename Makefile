# Everything installs from nothing but Python: `make test` and `make demo` create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= demo_out
# make bench BENCH_ARGS=--quick: small inputs; BENCH_ARGS='--only reader_throughput': one benchmark
BENCH_ARGS ?=

.PHONY: install browser test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[all,dev,clients]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

# The report is tested in a real headless browser: Debian's chromium, installed once if we may (root).
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium could not be installed: the browser test will be skipped"

# pytest-xdist: one worker per core (at most 4); a test file stays on one worker (its module fixtures run once)
TEST_WORKERS ?= auto

test: lint browser
	$(BIN)/pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

demo: install
	$(BIN)/mixlab demo --out $(DEMO_OUT)

bench: install
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
