#!/usr/bin/env bash
# Set up, load the demo district into the embedded store and start the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GRIDWATCH_DATA=${GRIDWATCH_DATA:-$PWD/var/gridwatch}
.venv/bin/gridwatch demo
exec .venv/bin/gridwatch serve --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
