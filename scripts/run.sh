#!/usr/bin/env bash
# Set up, load the demo district into the embedded store and start the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GRIDWATCH_DATA=${GRIDWATCH_DATA:-$PWD/var/gridwatch}
.venv/bin/gridwatch demo
# The first admin: created once, with $GRIDWATCH_ADMIN_PASSWORD or a random password printed here.
if [ -z "$(.venv/bin/gridwatch user list)" ]; then
  password=${GRIDWATCH_ADMIN_PASSWORD:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')}
  printf '%s\n' "$password" | .venv/bin/gridwatch user add admin --role admin --password-stdin
  [ -n "${GRIDWATCH_ADMIN_PASSWORD:-}" ] || echo "首个管理员 / first admin: admin  密码 / password: $password"
fi
exec .venv/bin/gridwatch serve --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
