#!/usr/bin/env bash
# Make sure Debian's headless Chromium is installed for the dashboard's browser tests
# (tests/e2e/test_dashboard.py drives it with Playwright): /usr/bin/chromium, or the path in
# SPOOL_CHROMIUM. Installs the `chromium` package with apt when it is missing.
set -euo pipefail

browser=${SPOOL_CHROMIUM:-/usr/bin/chromium}
[ -x "$browser" ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "error: $browser is missing and this is not a Debian-like system." >&2
  echo "Install Chromium and set SPOOL_CHROMIUM to its path." >&2
  exit 1
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "error: need root to install Chromium: $*" >&2; return 1; fi; }
echo "installing Chromium (Debian package chromium) for the dashboard's browser tests" >&2
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
[ -x "$browser" ] || { echo "error: Chromium installed, but $browser is not there" >&2; exit 1; }
