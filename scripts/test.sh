#!/usr/bin/env bash
# `make test`: everything a fresh machine of this kind needs, then every test. Exits non-zero on any failure.
#  1. Debian packages (PostgreSQL 15 is in the image; protoc for the interop stubs comes from grpcio-tools;
#     the C terminal client's libraries from scripts/build-deps.sh; kubectl renders deploy/k8s).
#  2. A throwaway PostgreSQL cluster in .data/test-pg (fsync off), started or reused.
#  3. swift test, against that cluster.
#  4. The Python grpcio interop tests, against real `kangyi dev` processes on real ports.
#  5. The deployment checks (Tests/Deploy): the Citus plan against the catalog, the Kubernetes manifests.
#  6. The fault suite (make faults) and a short fuzzing pass over the committed corpus (make fuzz).
#  7. Log privacy: no personal data a test sent appears in any kangyi or PostgreSQL log.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-apt.sh postgresql-15:/usr/lib/postgresql/15/bin/initdb curl:curl \
  postgresql-contrib:/usr/share/postgresql/15/extension/pg_trgm.control kubectl:kubectl openssl:openssl
scripts/build-deps.sh

swift build --build-tests
KANGYI_TEST_DATABASE_URL=$(.build/debug/kangyi db start --data .data/test-pg --throwaway)
export KANGYI_TEST_DATABASE_URL
echo "test database: ${KANGYI_TEST_DATABASE_URL%%@*}@${KANGYI_TEST_DATABASE_URL#*@}"
# Every test makes a database of its own and leaves it for a failure to be looked at; a reused cluster
# would grow without end (it once filled the disk at 56 GB), so the previous run's go first.
psql "$KANGYI_TEST_DATABASE_URL" -Atq -c "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'" |
  while read -r name; do psql "$KANGYI_TEST_DATABASE_URL" -q -c "DROP DATABASE \"$name\" WITH (FORCE)"; done

# At most 8 tests at once: every test makes its own database, and on 2 cores more at once only makes each
# slower (peer calls and leases then time out).
swift test --skip-build --experimental-maximum-parallelization-width 8

scripts/venv.sh
rm -rf .data/pytest-interop .data/pytest-faults .data/fuzz
KANGYI_BIN=$PWD/.build/debug/kangyi .venv/bin/python -m pytest -q -p no:cacheprovider --basetemp=.data/pytest-interop Tests/Interop
KANGYI_BIN=$PWD/.build/debug/kangyi .venv/bin/python -m pytest -q -s -p no:cacheprovider --basetemp=.data/pytest-deploy Tests/Deploy

scripts/faults.sh
FUZZ_SECONDS=45 scripts/fuzz.sh

.venv/bin/python Tests/privacy_check.py .data/pytest-interop .data/pytest-faults .data/fuzz .data/test-pg .data/faults-pg
