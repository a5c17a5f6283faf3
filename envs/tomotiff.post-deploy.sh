#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) once the environment of tomotiff.yaml exists: install tomotiff
# itself from this repository into it, without touching the conda-installed dependencies.
set -euo pipefail
pip install --no-deps --no-build-isolation -e "$(dirname "$0")/.."
