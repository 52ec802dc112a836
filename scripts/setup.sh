#!/usr/bin/env bash
# Sets up a fresh clone: the .venv virtual environment with paratrain installed, and the npm
# packages the compatibility tests run (Polkadot.js, chopsticks). Safe to run again.
#
# Every `make test`, `make test-fast` and `make lint` runs this first, so a second run must cost
# next to nothing: each step records the hash of what it installed from (a stamp file inside what it
# built) and is skipped while that hash is unchanged. `npm ci` in particular deletes and rewrites
# node_modules, tens of seconds on a 2-core machine. PARATRAIN_SETUP_FORCE=1 ignores the stamps.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp_matches() {  # stamp_matches STAMP FILE...: true when STAMP holds the current hash of the FILEs
  [[ "${PARATRAIN_SETUP_FORCE:-0}" != 1 && -f "$1" ]] || return 1
  local stamp=$1; shift
  [[ "$(cat "$stamp")" == "$(cat "$@" | sha256sum)" ]]
}

# The editable install maps the top-level packages it finds at install time, so the package list
# belongs in the stamp as much as pyproject.toml does.
py_inputs=(pyproject.toml scripts/setup.sh)
py_stamp=.venv/.paratrain-setup.sha256
if ! stamp_matches "$py_stamp" "${py_inputs[@]}" <(ls -d */__init__.py 2>/dev/null); then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test,train,fl]'
  cat "${py_inputs[@]}" <(ls -d */__init__.py 2>/dev/null) | sha256sum > "$py_stamp"
fi

if command -v npm >/dev/null; then
  js_stamp=tests/js/node_modules/.paratrain-setup.sha256
  if ! stamp_matches "$js_stamp" tests/js/package-lock.json; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
    sha256sum < tests/js/package-lock.json > "$js_stamp"
  fi
else
  echo "npm not found: the Polkadot.js and chopsticks tests will be skipped" >&2
fi
