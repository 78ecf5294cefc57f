# Two entry points, each doing all the set-up itself on a fresh machine:
#   make demo   the report's pipeline on Fashion-MNIST with 30 % instance-dependent noise
#   make test   the whole test suite (slow end-to-end tests included)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
FMNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench fashion-mnist clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# Debian ships the full Fashion-MNIST (60k/10k IDX files); nothing is downloaded at run time.
fashion-mnist:
	@test -f $(FMNIST)/train-images-idx3-ubyte.gz || \
	  ( $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist ) || \
	  echo "could not install dataset-fashion-mnist: pass --data-root to a folder with the IDX files"

demo: $(STAMP) fashion-mnist
	$(VENV)/bin/noisylab run --dataset fashion-mnist --noise idn:0.3 --method paper

test: $(STAMP) fashion-mnist
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy platform trainables sweeps tests benchmarks

bench: $(STAMP) fashion-mnist
	$(PY) benchmarks/epoch_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
