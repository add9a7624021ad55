# Two entry points for a fresh machine: `make book` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHAPTERS := $(wildcard notebooks/[0-9][0-9]_*.py)
HDLIB_HASH = $(shell find hdlib -name "*.py" -o -name "*.yaml" | sort | xargs cat | sha256sum | cut -c1-16)

.PHONY: setup book test test-fast lint browser lock execute results benchmark clean

setup: $(STAMP)

# The environment is rebuilt only when pyproject.toml or the lock changes. torch is pinned in
# pyproject.toml and installed first (the CPU build; see README); every other dependency comes
# at the exact version of requirements.lock, then hdlib itself without resolving again.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

TORCH_VERSION = $(shell sed -n 's/.*"torch==\([^"]*\)".*/\1/p' pyproject.toml)

# Re-resolve requirements.lock from pyproject.toml (every dependency but torch, exact versions).
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip-tools
	.lock-venv/bin/pip-compile --quiet --extra book --extra test --unsafe-package torch \
		--no-emit-index-url --no-emit-find-links \
		--strip-extras -o requirements.lock pyproject.toml
	rm -rf .lock-venv

# The site test opens every page in the system's Chromium (Debian package; no browser download).
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq chromium >/dev/null \
			|| { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
		else echo "Chromium is missing: run 'sudo apt-get install chromium'"; exit 1; fi; }

# Executes every chapter (cached by jupyter-cache; the cache is dropped when hdlib changes,
# because its key covers the notebook's code cells only) and renders HTML to _build/html.
book: $(STAMP)
	@if [ "$$(cat _build/.hdlib-hash 2>/dev/null)" != "$(HDLIB_HASH)" ]; then \
		rm -rf _build/.jupyter_cache; fi
	$(VENV)/bin/jupyter-book build . --all -W
	@echo $(HDLIB_HASH) > _build/.hdlib-hash

# Lint, unit tests, .py/.ipynb pairing, nbval over the stored notebooks, a -W book build.
test: $(STAMP) lint browser
	TQDM_DISABLE=1 $(PY) -m pytest tests $(CHAPTERS:.py=.ipynb) \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# The developer's loop: everything not marked slow (no notebook executions, no long fits).
test-fast: $(STAMP) lint
	TQDM_DISABLE=1 $(PY) -m pytest tests -m "not slow" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check hdlib tests benchmarks

# Re-run every chapter at its defaults and rewrite the paired notebooks that nbval compares.
execute: $(STAMP)
	$(PY) -m hdlib refresh $(CHAPTERS)

# Regenerate results/: each sweep file notebooks/sweeps/NN_name.yaml (NN: two digits) runs its notebook (its
# 'notebook:' entry, else chapter NN) into results/NN_name. Finished runs whose parameters,
# notebook and hdlib are unchanged are kept; `make results FORCE=--force` reruns everything.
results: $(STAMP)
	@for sweep in $(wildcard notebooks/sweeps/[0-9][0-9]_*.yaml); do \
		name=$$(basename $$sweep .yaml); \
		if grep -q '^notebook:' $$sweep; then notebook=; \
		else notebook=$$(ls notebooks/$${name%%_*}_*.py); fi; \
		echo "== $$sweep"; \
		OMP_NUM_THREADS=1 $(PY) -m hdlib sweep $$notebook -f $$sweep -o results/$$name \
			--workers 2 $(FORCE) || exit 1; \
	done

# Every figure at 1 and 2 threads; tables saved to benchmarks/results/, then
# book/performance.md is rewritten.
benchmark: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) -m benchmarks.leaky_ring_speed
	OMP_NUM_THREADS=2 $(PY) -m benchmarks.ei_ring_speed
	OMP_NUM_THREADS=2 $(PY) -m benchmarks.polar_speed
	$(PY) -m benchmarks.performance_page

clean:
	rm -rf _build notebooks/_runs notebooks/_artifacts .pytest_cache
