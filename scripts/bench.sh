#!/usr/bin/env bash
# `make bench`: performance as ratios against a baseline measured in the same run, on this machine.
# Release build; a fresh, durable PostgreSQL cluster (fsync and synchronous_commit on) in .data/bench-pg.
#
#   intake: pgbench running intake's own single-row INSERT at concurrency C (the disk's commit rate), then
#           SubmitHelpRequest direct at the same C (kangyi bench submit); rate ratio and p50/p99 of both.
#
# Figures land in .data/bench/results.json and are printed as a table. Nothing in `make test` depends on them.
set -euo pipefail
cd "$(dirname "$0")/.."
C=${BENCH_CONCURRENCY:-32}
T=${BENCH_SECONDS:-10}
OUT=.data/bench

scripts/ensure-apt.sh postgresql-contrib:/usr/share/postgresql/15/extension/pg_trgm.control
echo "building release binaries..."
swift build -c release --product kangyi >/dev/null 2>&1 || swift build -c release --product kangyi
BIN=$(swift build -c release --show-bin-path)/kangyi
PGBIN=/usr/lib/postgresql/15/bin

rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN" db stop --data .data/bench-pg 2>/dev/null || true
rm -rf .data/bench-pg
CLUSTER=$("$BIN" db start --data .data/bench-pg 2>"$OUT/db.log")
cleanup() {
  [[ -n "${SERVER:-}" ]] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  "$BIN" db stop --data .data/bench-pg 2>/dev/null || true
}
trap cleanup EXIT
psql "$CLUSTER" -q -c "CREATE DATABASE bench"
DB=${CLUSTER%/*}/bench
psql "$DB" -At -c "SHOW fsync; SHOW synchronous_commit" | paste -sd' ' | sed 's/^/durability (fsync, synchronous_commit): /'
KANGYI_DATABASE_URL=$DB "$BIN" migrate intake >/dev/null 2>>"$OUT/db.log"

echo "pgbench: intake's INSERT, $C clients, ${T}s..."
(cd "$OUT" && "$PGBIN/pgbench" -n -c "$C" -j 2 -T "$T" -f ../../scripts/bench/intake-insert.sql -l \
  --log-prefix=pgbench "$DB" > pgbench.txt 2>&1)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KANGYI_DATABASE_URL=$DB KANGYI_GRPC_PORT=$PORT KANGYI_METRICS_PORT=0 KANGYI_LOG_LEVEL=warning \
  "$BIN" serve intake 2>"$OUT/intake.log" &
SERVER=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

echo "intake SubmitHelpRequest direct, $C in flight, ${T}s..."
"$BIN" bench submit --target "127.0.0.1:$PORT" --concurrency "$C" --seconds "$T" --json "$OUT/intake.json" >/dev/null
RUN=$(python3 -c "import json; print(json.load(open('$OUT/intake.json'))['run'])")
ROWS=$(psql "$DB" -At -c "SELECT count(*) FROM intake.help_requests WHERE request_id LIKE 'bench-$RUN-%'")

python3 scripts/bench/report.py "$OUT" "$ROWS" "$C" "$T"
