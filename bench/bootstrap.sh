#!/usr/bin/env bash
# What `make bench` needs beyond `make bootstrap`: wrk (the closed-loop load tool, a Debian package) and, with
# --profile, py-spy in .venv (the sampling profiler, from PyPI). Installs only what is missing.
# Usage: bench/bootstrap.sh [--profile]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench: wrk is missing; install it with: sudo apt-get install -y wrk" >&2
    exit 1
  fi
  echo "bench: installing wrk" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi

if [[ "${1:-}" == "--profile" && ! -x .venv/bin/py-spy ]]; then
  echo "bench: installing py-spy into .venv" >&2
  .venv/bin/pip install -q py-spy
fi
