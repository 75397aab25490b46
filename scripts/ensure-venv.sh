#!/usr/bin/env bash
# Create .venv with Spool and its development tools, once; again when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Spool needs Python 3.11 or newer ($PYTHON is $($PYTHON -V 2>&1))" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "installing python3-venv" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing Python dependencies into .venv" >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
  if ! .venv/bin/python -m pip install -q -e '.[dev]' >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    exit 1
  fi
  touch "$stamp"
fi
