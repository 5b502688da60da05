#!/usr/bin/env bash
# Lint, type-check and test.  The README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The PostGIS tests start a throw-away PostgreSQL cluster and stop it when the session ends; each
# cluster's folder is recorded here so that one a killed or crashed run left behind is stopped too.
export GRIDWATCH_TEST_PG_DIRS
GRIDWATCH_TEST_PG_DIRS=$(mktemp)
stop_clusters() {
  while read -r folder; do
    [ -n "$folder" ] || continue
    bash scripts/postgres.sh stop "$folder" >/dev/null 2>&1 || true
    rm -rf "$folder"
  done <"$GRIDWATCH_TEST_PG_DIRS"
  rm -f "$GRIDWATCH_TEST_PG_DIRS"
}
trap stop_clusters EXIT
.venv/bin/python -m pytest "$@"
