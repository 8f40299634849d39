#!/usr/bin/env bash
# `make fuzz MINUTES=10`: structured fuzzing of every RPC over the wire (Tests/Fuzz/fuzz_rpcs.py) against
# a real `kangyi dev`: the committed corpus first, then random rounds. Needs the test cluster (started
# here if it is not running). Failures land in .data/fuzz/failures/.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .build/debug/kangyi ]] || swift build --product kangyi
scripts/venv.sh
KANGYI_TEST_DATABASE_URL=${KANGYI_TEST_DATABASE_URL:-$(.build/debug/kangyi db start --data .data/test-pg --throwaway)}
export KANGYI_TEST_DATABASE_URL
SECONDS_TO_RUN=$(( ${MINUTES:-1} * 60 ))
KANGYI_BIN=$PWD/.build/debug/kangyi .venv/bin/python Tests/Fuzz/fuzz_rpcs.py --seconds "${FUZZ_SECONDS:-$SECONDS_TO_RUN}" \
  2>&1 | grep -v 'chttp2_transport.cc'
