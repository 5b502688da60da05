#!/usr/bin/env bash
# Set up, load the demo district into the embedded store and start the server.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the main job uses too: CJK fonts for the report and map images, LibreOffice for
# the report as PDF, npm for the map's scripts
bash scripts/system-packages.sh
bash scripts/setup.sh
export GRIDWATCH_DATA=${GRIDWATCH_DATA:-$PWD/var/gridwatch}
# the demo's import reports are kept in a log; its last line says where it was loaded
log=$(mktemp)
if ! .venv/bin/gridwatch demo >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
tail -n 1 "$log"
rm -f "$log"
# The first admin: created once, with $GRIDWATCH_ADMIN_PASSWORD or a random password shown below.
if [ -z "$(.venv/bin/gridwatch user list)" ]; then
  password=${GRIDWATCH_ADMIN_PASSWORD:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')}
  printf '%s\n' "$password" | .venv/bin/gridwatch user add admin --role admin --password-stdin >/dev/null
  [ -z "${GRIDWATCH_ADMIN_PASSWORD:-}" ] || password='($GRIDWATCH_ADMIN_PASSWORD)'
  account="首个管理员 / first admin:  admin    密码 / password:  $password"
else
  account="账户已建立 / accounts exist:  .venv/bin/gridwatch user list"
fi
host=${HOST:-127.0.0.1}
port=${PORT:-5000}
# last and framed, where a newcomer sees it
line=$(printf '=%.0s' $(seq 1 78))
printf '\n%s\n  gridwatch:  http://%s:%s/\n  %s\n%s\n\n' "$line" "$host" "$port" "$account" "$line"
exec .venv/bin/gridwatch serve --host "$host" --port "$port"
