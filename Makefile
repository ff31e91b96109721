# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Label Studio pins dependencies that clash with ours, so it lives in its own environment.
LS_VENV := .venv-labelstudio
LS_VERSION ?= 1.23.2
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-dev demo test bench lint labelstudio browser clean

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# Pinned CPU build first: a bare `torch` requirement would pull a multi-GB CUDA build. A torch
	# already in the venv (a CUDA build a GPU user installed first) is kept.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(LS_VENV)/.installed:
	test -d $(LS_VENV) || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q label-studio==$(LS_VERSION)
	touch $@

labelstudio: $(LS_VENV)/.installed

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser of its own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: install Debian's 'chromium' package to run the browser tests"; fi; }

demo: install
	$(VENV)/bin/curatune demo --out runs/demo

test: install-dev labelstudio browser
	$(PY) -m pytest -q

bench: install-dev labelstudio
	$(PY) -m benchmarks.run_all --data ../shared/data

lint: install-dev
	$(VENV)/bin/ruff check curatune tests benchmarks

clean:
	rm -rf runs .pytest_cache
