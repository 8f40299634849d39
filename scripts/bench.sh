#!/usr/bin/env bash
# `make bench`: performance as ratios against a baseline measured in the same run, on this machine.
# Release build; a fresh, durable PostgreSQL cluster (fsync and synchronous_commit on) in .data/bench-pg.
#
#   intake: pgbench running intake's own single-row INSERT at concurrency C (the disk's commit rate), then
#           SubmitHelpRequest direct at the same C (kangyi bench submit); rate ratio and p50/p99 of both.
#   gateway: the same SubmitHelpRequest load through the gateway (kangyi serve gateway in front of the same
#           intake, a bench token); rate ratio gateway / direct and the p50 the gateway adds.
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
  [[ -n "${GATEWAY:-}" ]] && kill -TERM "$GATEWAY" 2>/dev/null && wait "$GATEWAY" 2>/dev/null
  [[ -n "${SERVER:-}" ]] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  "$BIN" db stop --data .data/bench-pg 2>/dev/null || true
}
trap cleanup EXIT
psql "$CLUSTER" -q -c "CREATE DATABASE bench"
DB=${CLUSTER%/*}/bench
psql "$DB" -At -c "SHOW fsync; SHOW synchronous_commit" | paste -sd' ' | sed 's/^/durability (fsync, synchronous_commit): /'
KANGYI_DATABASE_URL=$DB "$BIN" migrate >/dev/null 2>>"$OUT/db.log"

echo "pgbench: intake's INSERT, $C clients, ${T}s..."
(cd "$OUT" && "$PGBIN/pgbench" -n -c "$C" -j 2 -T "$T" -f ../../scripts/bench/intake-insert.sql -l \
  --log-prefix=pgbench "$DB" > pgbench.txt 2>&1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; }
PORT=$(free_port)
KANGYI_DATABASE_URL=$DB KANGYI_GRPC_PORT=$PORT KANGYI_METRICS_PORT=0 KANGYI_LOG_LEVEL=warning \
  "$BIN" serve intake 2>"$OUT/intake.log" &
SERVER=$!
wait_port "$PORT"
GPORT=$(free_port)
KANGYI_DATABASE_URL=$DB KANGYI_GRPC_PORT=$GPORT KANGYI_HTTP_PORT=0 KANGYI_METRICS_PORT=0 KANGYI_LOG_LEVEL=warning \
  KANGYI_INTAKE_ADDRESS="127.0.0.1:$PORT" "$BIN" serve gateway 2>"$OUT/gateway.log" &
GATEWAY=$!
wait_port "$GPORT"
TOKEN=$(KANGYI_DATABASE_URL=$DB KANGYI_LOG_LEVEL=error "$BIN" token create --caller bench --kind citizen-frontend \
  --rate 1000000 --burst 1000000 2>/dev/null)

rows_of() {
  local run; run=$(python3 -c "import json; print(json.load(open('$1'))['run'])")
  psql "$DB" -At -c "SELECT count(*) FROM intake.help_requests WHERE request_id LIKE 'bench-$run-%'"
}
echo "intake SubmitHelpRequest direct, $C in flight, ${T}s..."
"$BIN" bench submit --target "127.0.0.1:$PORT" --concurrency "$C" --seconds "$T" --json "$OUT/intake.json" >/dev/null
echo "intake SubmitHelpRequest through the gateway, $C in flight, ${T}s..."
"$BIN" bench submit --target "127.0.0.1:$GPORT" --token "$TOKEN" --concurrency "$C" --seconds "$T" \
  --json "$OUT/gateway.json" >/dev/null

python3 scripts/bench/report.py "$OUT" "$(rows_of "$OUT/intake.json")" "$(rows_of "$OUT/gateway.json")" "$C" "$T"
