#!/usr/bin/env bash
# Re-pins the Python dependencies with hashes (run after changing them in pyproject.toml, or to take upgrades):
#   requirements.lock       the runtime dependencies (deploy/Dockerfile installs these)
#   requirements-test.lock  runtime + the `test` extra, at the same versions (bootstrap, so `make test` and CI)
# Uses uv from PATH, or installs it into a throw-away virtual environment under .cache/. Extra arguments go to
# both compiles, e.g. `deploy/local/lock.sh --upgrade-package fastapi`.
set -euo pipefail
cd "$(dirname "$0")/../.."

uv=$(command -v uv || true)
if [[ -z $uv ]]; then
  if [[ ! -x .cache/uv/bin/uv ]]; then
    "${PYTHON:-python3.11}" -m venv .cache/uv
    .cache/uv/bin/pip install -q uv
  fi
  uv=.cache/uv/bin/uv
fi
common=(--generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock" -q)
"$uv" pip compile pyproject.toml "${common[@]}" -o requirements.lock "$@"
"$uv" pip compile pyproject.toml --extra test -c requirements.lock "${common[@]}" -o requirements-test.lock "$@"
echo "lock: requirements.lock and requirements-test.lock updated; commit them with pyproject.toml" >&2
