#!/usr/bin/env bash
# `make faults`: the fault suite (Tests/Faults) — real `kangyi serve` processes over a durable PostgreSQL
# cluster of their own (.data/faults-pg), with the database killed, slowed and stopped, peers gone and
# SIGTERM mid-load. Prints each scenario's figures (also in .data/faults/figures.json).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .build/debug/kangyi ]] || swift build --product kangyi
scripts/venv.sh
KANGYI_BIN=$PWD/.build/debug/kangyi .venv/bin/python -m pytest -q -s -p no:cacheprovider \
  --basetemp=.data/pytest-faults Tests/Faults "$@" 2>&1 | grep -v 'chttp2_transport.cc'
