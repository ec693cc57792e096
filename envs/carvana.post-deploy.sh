#!/usr/bin/env bash
# Installs the pipeline's own package (src/carvana) into the freshly created conda environment,
# without touching its pinned dependencies. Snakemake runs this from the workflow's directory.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
