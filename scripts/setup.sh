#!/usr/bin/env bash
# Create .venv and install gridwatch with its test tools.  Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# English translations of the pages (Simplified Chinese is the source language)
.venv/bin/pybabel compile --statistics -d translations >/dev/null
# Leaflet and its plugins, from the npm registry, served by the app itself (no CDN at run time)
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm is missing; install Node.js and npm (Debian: apt-get install npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
