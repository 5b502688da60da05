#!/usr/bin/env bash
# A throw-away PostgreSQL cluster with PostGIS, on a Unix socket in a folder of its own, for
# the PostGIS benchmarks (and, with the PostGIS backend, its tests).  Installs Debian's
# postgresql and postgresql-15-postgis-3 when missing (needs root, as on CI).  PostgreSQL
# refuses to run as root: as root the cluster belongs to the `postgres` user.
#
#   bash scripts/postgres.sh start DIR   # prints the connection URL (socket in DIR, no password)
#   bash scripts/postgres.sh stop DIR    # stops the cluster; DIR can then be removed
set -euo pipefail
action=${1:-}
dir=${2:-}
if [ -z "$action" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
run_as() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$action" in
start)
  if [ -z "$bindir" ] || ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "postgres: PostgreSQL with PostGIS is not installed and cannot be installed here (not root or no apt-get)" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql postgresql-15-postgis-3 >/dev/null
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
  fi
  if [ ! -f "$dir/db/PG_VERSION" ]; then
    run_as "$bindir/initdb" -D "$dir/db" -U gridwatch --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
  fi
  # no TCP port: the socket in DIR only, so two runs never meet
  if ! run_as "$bindir/pg_ctl" -D "$dir/db" status >/dev/null 2>&1; then
    run_as "$bindir/pg_ctl" -D "$dir/db" -l "$dir/server.log" -w -o "-k $dir -c listen_addresses=''" start >/dev/null
  fi
  run_as "$bindir/psql" -h "$dir" -U gridwatch -d postgres -qAt \
    -c "SELECT 1 FROM pg_database WHERE datname='gridwatch'" | grep -q 1 ||
    run_as "$bindir/createdb" -h "$dir" -U gridwatch gridwatch
  run_as "$bindir/psql" -h "$dir" -U gridwatch -d gridwatch -qc "SET client_min_messages=warning; CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
  echo "postgresql://gridwatch@/gridwatch?host=$dir"
  ;;
stop)
  if [ -n "$bindir" ] && [ -f "$dir/db/postmaster.pid" ]; then
    run_as "$bindir/pg_ctl" -D "$dir/db" -m fast -w stop >/dev/null
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
