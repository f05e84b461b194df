# Two commands do everything on a fresh machine: `make play` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# CPU torch where no NVIDIA GPU is present (an unpinned torch pulls a multi-GB CUDA build).
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_GPU),1)
TORCH_SPEC := torch
else
TORCH_SPEC := torch==2.13.0
endif
export WANDB_MODE ?= offline

.PHONY: install test test-all play lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e ".[dev,coinrun]"
	# CoinRun footage: procgen-mirror 0.10.7, gym3 and gym declare numpy<2, but run fine on numpy 2;
	# installing them with --no-deps keeps numpy 2 (which opencv-python needs) in the same .venv.
	$(PIP) install -q --no-deps procgen-mirror==0.10.7 gym3==0.3.3 gym==0.26.2
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ""

play: install
	$(PY) play.py

lint: install  # style, then the layering contracts in pyproject.toml ([tool.importlinter])
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV)
