#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine, and nothing twice:
#   - system packages (as root): PostgreSQL server, Prometheus (and promtool), Chromium for the browser tests,
#     Maven and a Java runtime for the Kafka broker;
#   - the project's virtual environment in .venv with its Python packages, exactly as pinned (with hashes) in
#     requirements-test.lock (re-done when the lock or pyproject.toml changes; `make lock` updates the lock);
#   - the Apache Kafka jars from Maven Central (done by the harness on first start, cached in .cache/kafka).
# Usage: deploy/local/bootstrap.sh [--with-browser]
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3.11}"
want_browser=0
[[ "${1:-}" == "--with-browser" ]] && want_browser=1

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v prometheus >/dev/null || missing+=(prometheus)
if [[ $want_browser == 1 ]] && ! command -v chromium >/dev/null; then missing+=(chromium); fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # The Debian package starts its own cluster on port 5432; the harness runs its own, so leave the default alone.
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "bootstrap: creating .venv with $PYTHON" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml requirements-test.lock | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "bootstrap: installing the locked Python packages into .venv" >&2
  # Every package at the locked version, checked against its hashes; then the project itself, without letting
  # pip resolve anything else.
  .venv/bin/pip install -q --require-hashes -r requirements-test.lock
  .venv/bin/pip install -q --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
