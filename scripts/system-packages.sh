#!/usr/bin/env bash
# Debian packages set-up and the tests use: npm (installs Leaflet for the map), chromium (browser
# tests, driven by Playwright with this executable; no browser is downloaded), LibreOffice Calc
# (opens the exported XLSX headless), LibreOffice Writer (turns the monthly report into PDF), poppler's
# pdftoppm (the report's pages as images in the tests), CJK fonts, and PostgreSQL with PostGIS (the
# PostGIS store's tests start a throw-away cluster of their own with scripts/postgres.sh).
# Installs only what is missing; needs root (as on CI).  Without root it says so and the
# LibreOffice test is skipped.
set -euo pipefail
need=()
command -v soffice >/dev/null 2>&1 || need+=(libreoffice-calc-nogui)
dpkg -s libreoffice-writer-nogui >/dev/null 2>&1 || need+=(libreoffice-writer-nogui)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 || need+=(postgresql-15-postgis-3)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: not root or no apt-get; missing: ${need[*]} (their tests will be skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
