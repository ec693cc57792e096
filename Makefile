# Two entry points: `make run` and `make test`. Both build .venv first when it is missing or
# pyproject.toml changed; `make test` also installs Debian's chromium, in which a test renders the
# HTML report, and Debian's Slurm and munge, with which a test runs a one-node cluster of its own
# (its daemons live only as long as that test). Nothing here needs a GPU or the Kaggle API.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
MUTATE_CHILDREN ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# albumentations asks the network for a newer version at import unless told not to.
export NO_ALBUMENTATIONS_UPDATE := 1
export PATH := $(BIN):$(PATH)

.PHONY: install run report test browser slurm lint format bench gpu-check scale mutate clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP)
	snakemake --cores $(CORES)

report: $(STAMP)
	snakemake --report results/report.html

# The lint runs beside the tests (mypy alone is half a minute of one core on a fresh clone, and
# the tests leave a core idle a sixth of the time); its output follows theirs, and either failing
# fails the target.
test: $(STAMP) browser slurm
	@lint_log=$$(mktemp); $(MAKE) --no-print-directory lint >"$$lint_log" 2>&1 & lint=$$!; \
	CARVANA_REQUIRE_CHROMIUM=1 CARVANA_REQUIRE_SLURM=1 pytest --durations=25; tests=$$?; \
	wait $$lint; linted=$$?; echo "--- make lint:"; cat "$$lint_log"; rm -f "$$lint_log"; \
	[ $$linted = 0 ] || echo "make test: the lint failed (above)"; \
	[ $$tests = 0 ] && [ $$linted = 0 ]

browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium: a test renders the HTML report in it"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

slurm:
	@PATH="$$PATH:/usr/sbin:/sbin"; command -v slurmd >/dev/null && command -v munged >/dev/null || { \
	  echo "installing Debian's slurm-wlm and munge: a test runs the workflow on a one-node Slurm cluster"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }

# The benchmarks are the package benchmarks/, each run here as python -m benchmarks.<name>.

# Prediction, RLE, training and planning speed beside references measured in the same run; writes
# results/harness.json. A quicker run: make bench BENCH="--image-scale 0.5 --images 32"
bench: $(STAMP)
	python -m benchmarks.harness $(BENCH)

# On one GPU at competition.yaml's sizes: training and prediction speed, memory, the share of the
# device's peak, and the whole competition's projected wall clock; writes results/gpu_check.json.
# Without a GPU it runs on the CPU; a quick look: make gpu-check GPU_CHECK="--image-scale 0.05 --width 0.125 --compile off"
gpu-check: $(STAMP)
	python -m benchmarks.gpu_check $(GPU_CHECK)

# Each stage of the real competition at its counts (5,088 training and 100,064 test images), from
# its command measured here on generated 1918x1280 images: one job's hours on 2 to 32 cores, its
# memory and the disk, beside what profiles/slurm gives it; exits 1 when a job would not fit.
# Writes results/scale.json (about 2 minutes). A GPU's stages come from results/gpu_check.json.
scale: $(STAMP)
	python -m benchmarks.scale $(SCALE)

lint: $(STAMP)
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	mypy
	snakefmt --check Snakefile workflow/rules

format: $(STAMP)
	ruff check --fix src tests benchmarks
	ruff format src tests benchmarks
	snakefmt Snakefile workflow/rules

# Mutation testing of the pure core (rle, metrics, folds, thresholds, TTA, ensemble, weights)
# against its fast tests: every mutant a test does not kill is listed. Not part of `make test`.
mutate: $(STAMP)
	python -m pip install --quiet -e '.[mutate]'
	rm -rf mutants
	mkdir -p results && mutmut run --max-children $(MUTATE_CHILDREN) > results/mutmut.log 2>&1 || { tail -20 results/mutmut.log; exit 1; }
	mutmut export-cicd-stats > /dev/null
	@python -c "import json; s = json.load(open('mutants/mutmut-cicd-stats.json')); \
	  print(f\"mutants: {s['killed']} killed of {s['total']}, {s['survived']} survived, {s['timeout']} timed out, {s['no_tests']} untested\")"
	mutmut results

clean:
	rm -rf results/* .snakemake
	git checkout -- results/README.md
