#!/usr/bin/env bash
# Sets up a fresh clone: the .venv virtual environment with paratrain installed, and the npm
# packages the compatibility tests run (Polkadot.js, chopsticks). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,train]'
if command -v npm >/dev/null; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "npm not found: the Polkadot.js and chopsticks tests will be skipped" >&2
fi
