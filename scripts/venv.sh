#!/usr/bin/env bash
# The git-ignored Python virtualenv the interop tests (and scripts/call.py) use, with grpcio and friends,
# plus Python stubs of our protos generated into .build-python/. Idempotent: reinstalls only when
# the requirements or the protos change.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS="grpcio grpcio-tools grpcio-health-checking grpcio-reflection protobuf pytest kubernetes-validate pyyaml h2"
STAMP=.venv/.kangyi-requirements
if [[ ! -x .venv/bin/python || "$(cat "$STAMP" 2>/dev/null)" != "$REQUIREMENTS" ]]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check $REQUIREMENTS
  echo "$REQUIREMENTS" > "$STAMP"
fi
# Stubs for our own protos only (generating grpc/health would shadow grpcio's own package).
rm -rf .build-python && mkdir -p .build-python
mapfile -t OWN < <(cd proto && find kangyi -name '*.proto' | LC_ALL=C sort)
.venv/bin/python -m grpc_tools.protoc -Iproto --python_out=.build-python --pyi_out=.build-python \
  --grpc_python_out=.build-python "${OWN[@]}"
