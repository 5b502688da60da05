#!/usr/bin/env bash
# Create .venv and install gridwatch with its test tools.  Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Quiet unless something fails: a step's output is kept and shown only when the step fails.
quietly() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "setup: failed: $*" >&2
    return 1
  fi
  rm -f "$log"
}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
quietly .venv/bin/python -m pip install --upgrade pip
quietly .venv/bin/python -m pip install -e ".[dev,postgis]"
# English translations of the pages (Simplified Chinese is the source language)
quietly .venv/bin/pybabel compile --statistics -d translations
# Leaflet and its plugins, from the npm registry, served by the app itself (no CDN at run time)
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm is missing; install Node.js and npm (Debian: apt-get install npm)" >&2
  exit 1
fi
quietly npm ci --no-audit --no-fund --loglevel=error
