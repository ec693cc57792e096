# Two entry points: `make run` and `make test`. Both build .venv first when it is missing or
# pyproject.toml changed. Nothing here needs a GPU or the Kaggle API.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

# albumentations asks the network for a newer version at import unless told not to.
export NO_ALBUMENTATIONS_UPDATE := 1
export PATH := $(BIN):$(PATH)

.PHONY: install run test lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP)
	snakemake --cores $(CORES)

test: $(STAMP) lint
	pytest

lint: $(STAMP)
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	mypy
	snakefmt --check Snakefile workflow/rules

format: $(STAMP)
	ruff check --fix src tests benchmarks
	ruff format src tests benchmarks
	snakefmt Snakefile workflow/rules

clean:
	rm -rf results/* .snakemake
	git checkout -- results/README.md
