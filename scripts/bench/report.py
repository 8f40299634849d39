#!/usr/bin/env python3
"""Reads what scripts/bench.sh measured, checks it, prints the table and writes results.json."""
import glob
import json
import os
import platform
import re
import sys

out, concurrency, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load = lambda name: json.load(open(f"{out}/{name}.json"))

# The disk: fdatasync of one 8 kB write (the method PostgreSQL uses here).
fsync_text = open(f"{out}/pg_test_fsync.txt").read()
fsync = re.search(r"one 8kB write.*?fdatasync\s+([\d.]+) ops/sec", fsync_text, re.S)
disk = {"fdatasync_per_s": float(fsync.group(1)) if fsync else None}

pct = lambda values, p: values[min(len(values) - 1, int(len(values) * p))] / 1000 if values else 0.0


def pgbench_run(prefix):
    """A pgbench run: its rate, and its latencies from the per-transaction logs (prefix.<pid>)."""
    text = open(f"{out}/{prefix}.txt").read()
    latencies = sorted(int(line.split()[2]) for path in glob.glob(f"{out}/{prefix}.*") if not path.endswith(".txt")
                       for line in open(path))
    return {"rate_per_s": float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", text).group(1)),
            "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99), "transactions": len(latencies)}


pgbench, pgbench1 = pgbench_run("pgbench"), pgbench_run("pgbench1")
tps = pgbench["rate_per_s"]

noop_h2load, noop, bare_h2load = load("noop-h2load"), load("noop"), load("noop-bare-h2load")
direct, gateway, overload = load("submit-direct"), load("submit-gateway"), load("overload")
light = {name: load(name) for name in ("noop-light", "bare-light", "submit-light-direct", "submit-light-gateway")}
# Every acknowledged submission must be a row (rows may exceed: warm-up and tail are not counted as acknowledged).
for name, run in (("submit-direct", direct), ("submit-gateway", gateway), ("overload", overload),
                  ("submit-light-direct", light["submit-light-direct"]), ("submit-light-gateway", light["submit-light-gateway"])):
    run["rows_in_database"], run["repeats_in_database"] = map(int, open(f"{out}/{name}.rows").read().split())
    if run["rows_in_database"] < run["ok"]:
        sys.exit(f"FAILED: {name}: {run['ok']} submissions acknowledged but only {run['rows_in_database']} rows stored")
    # The workload is new requests: a run whose submissions repeat earlier ones measures the repeat path.
    if run["repeats_in_database"] > 0.01 * run["rows_in_database"]:
        sys.exit(f"FAILED: {name}: {run['repeats_in_database']} of {run['rows_in_database']} submissions were repeats")
# An open-loop run whose generator skipped calls (too many in flight) did not offer its rate.
if overload.get("late", 0) > 0:
    sys.exit(f"FAILED: overload: the generator could not send {overload['late']} calls on schedule")
# Light-load percentiles are taken over at least 2,000 calls (issue #14); fewer means a longer run is needed.
for name in ("noop-light", "bare-light", "submit-light-direct", "submit-light-gateway"):
    if light[name]["ok"] < 2000:
        sys.exit(f"FAILED: {name}: only {light[name]['ok']} calls in the window (< 2,000): raise BENCH_LIGHT_SECONDS")
ratio = lambda a, b: a / b if b else None
uploads = {name: load(name) for name in ("upload-direct", "upload-gateway", "upload-one", "upload-single")}
copy = load("copy")
for name, run in uploads.items():
    run["rows_in_database"] = int(open(f"{out}/{name}.rows").read())
    if run["rows_in_database"] < run["acked_total"] or run["errors"]:
        sys.exit(f"FAILED: {name}: {run['acked_total']} logs acknowledged, {run['rows_in_database']} rows stored, errors {run['errors']}")

price_runs = {name: load(name) for name in ("prices-ingest", "prices-ingest-500")}
for name, run in price_runs.items():
    run["rows_in_database"] = int(open(f"{out}/{name}.rows").read())
    if run["rows_in_database"] < run["stored_total"] or run["errors"]:
        sys.exit(f"FAILED: {name}: {run['stored_total']} stored, {run['rows_in_database']} rows, errors {run['errors'][:3]}")
prices = price_runs["prices-ingest"]
copy_prices = load("copy-prices")
series_district, series_city = load("prices-series-district"), load("prices-series-city")
aggregated = int(open(f"{out}/prices-aggregated.rows").read())

results = {
    "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
    "concurrency": concurrency, "seconds": seconds,
    "disk": disk, "pgbench_insert": pgbench,
    "pgbench_insert_one_client": pgbench1,
    "noop": {"h2load": noop_h2load, "kangyi_bench": noop, "bare_h2load": bare_h2load},
    "light_load": light,
    "intake": {"submit_direct": direct, "submit_through_gateway": gateway, "overload": overload},
    "checkpoint": {"upload_direct": uploads["upload-direct"], "upload_through_gateway": uploads["upload-gateway"],
                   "upload_one_terminal": uploads["upload-one"], "upload_one_log_a_message": uploads["upload-single"], "copy": copy},
    "pricewatch": {"ingest_direct": prices, "ingest_direct_half_batches": price_runs["prices-ingest-500"], "copy": copy_prices, "series_district": series_district,
                   "series_city": series_city, "observations_aggregated": aggregated},
    "memory_peak_mib": load("memory"),
    "ratios": {
        "submit_over_pgbench": ratio(direct["rate_per_s"], tps),
        "submit_over_noop": ratio(direct["rate_per_s"], noop["rate_per_s"]),
        "gateway_over_direct": ratio(gateway["rate_per_s"], direct["rate_per_s"]),
        "gateway_added_p50_ms": gateway["p50_ms"] - direct["p50_ms"],
        "overload_goodput_over_direct": ratio(overload["rate_per_s"], direct["rate_per_s"]),
        "noop_over_bare": ratio(noop_h2load["rate_per_s"], bare_h2load["rate_per_s"]),
        "light_submit_p50_over_pgbench1_ms": light["submit-light-direct"]["p50_ms"] - pgbench1["p50_ms"],
        "light_gateway_added_p50_ms": light["submit-light-gateway"]["p50_ms"] - light["submit-light-direct"]["p50_ms"],
        "upload_over_copy": ratio(uploads["upload-direct"]["rate_per_s"], copy["rate_per_s"]),
        "upload_gateway_over_direct": ratio(uploads["upload-gateway"]["rate_per_s"], uploads["upload-direct"]["rate_per_s"]),
        "prices_ingest_over_copy": ratio(prices["rate_per_s"], copy_prices["rate_per_s"]),
    },
}
json.dump(results, open(f"{out}/results.json", "w"), indent=2, sort_keys=True)

def row(name, rate, p50, p99, cpu=""):
    print(f"{name:50} {rate:>9} {p50:>8} {p99:>8}  {cpu}")

f0 = lambda v: f"{v:.0f}"
f2 = lambda v: f"{v:.2f}"
cpu = lambda run: (f"{run['cpu_ms_per_call']['servers']:.2f} + {run['cpu_ms_per_call']['postgres']:.2f}"
                   + (f" (generator {run['cpu_ms_per_call']['generator']:.3f})" if "generator" in run["cpu_ms_per_call"] else ""))
print()
print(f"disk: {disk['fdatasync_per_s'] or '?'} fdatasync/s (pg_test_fsync, one 8 kB write)")
row("scenario", "rate/s", "p50 ms", "p99 ms", "CPU ms/call (servers + PostgreSQL) (load generator)")
row("pgbench: intake INSERT, 1 row per commit", f0(tps), f2(pgbench["p50_ms"]), f2(pgbench["p99_ms"]))
row("no-op RPC, h2load (mean latency)", f0(noop_h2load["rate_per_s"]), f2(noop_h2load["mean_ms"]), "-",
    f"{noop_h2load['cpu_ms_per_call']:.3f} + 0")
row("no-op RPC, bare grpc-swift, h2load (mean latency)", f0(bare_h2load["rate_per_s"]), f2(bare_h2load["mean_ms"]), "-",
    f"{bare_h2load['cpu_ms_per_call']:.3f} + 0")
row("no-op RPC, kangyi-load", f0(noop["rate_per_s"]), f2(noop["p50_ms"]), f2(noop["p99_ms"]), cpu(noop))
row("intake SubmitHelpRequest, direct", f0(direct["rate_per_s"]), f2(direct["p50_ms"]), f2(direct["p99_ms"]), cpu(direct))
row("intake SubmitHelpRequest, through the gateway", f0(gateway["rate_per_s"]), f2(gateway["p50_ms"]), f2(gateway["p99_ms"]), cpu(gateway))
row(f"overload: open loop at {overload['offered_rate_per_s']:.0f}/s (goodput)", f0(overload["rate_per_s"]),
    f2(overload["p50_ms"]), f2(overload["p99_ms"]), cpu(overload))
ucpu = lambda run: f"{run['cpu_ms_per_call']['servers'] * 1000:.1f} + {run['cpu_ms_per_call']['postgres'] * 1000:.1f} µs/row"
row("checkpoint: \\copy into vehicle_logs", f0(copy["rate_per_s"]), "-", "-")
per_message = lambda name: f"{uploads[name]['batch']} logs a message" if uploads[name]["batch"] > 1 else "one log a message"
for name, label in (("upload-direct", f"UploadVehicleLogs, {uploads['upload-direct']['terminals']} terminals, {per_message('upload-direct')}, direct"),
                    ("upload-gateway", f"UploadVehicleLogs, {uploads['upload-gateway']['terminals']} terminals, {per_message('upload-gateway')}, gateway"),
                    ("upload-one", f"UploadVehicleLogs, 1 terminal, {per_message('upload-one')}, direct"),
                    ("upload-single", f"UploadVehicleLogs, {uploads['upload-single']['terminals']} terminals, {per_message('upload-single')}, direct")):
    row(label, f0(uploads[name]["rate_per_s"]), "-", "-", ucpu(uploads[name]))
row("pricewatch: \\copy into observations", f0(copy_prices["rate_per_s"]), "-", "-")
for run in price_runs.values():
    row(f"SubmitPriceObservations, {run['feeds']} feeds × {run['batch']}, direct", f0(run["rate_per_s"]), "-", "-", ucpu(run))
for label, run in (("GetPriceSeries, a year in months, one district", series_district),
                   ("GetPriceSeries, a year in months, the whole city", series_city)):
    row(label, "-", f2(run["p50_ms"]), f2(run["p99_ms"]), f"{run['values_per_call']} prices per call")
print("light load, one call at a time:")
row("  pgbench: intake INSERT, 1 client", f0(pgbench1["rate_per_s"]), f2(pgbench1["p50_ms"]), f2(pgbench1["p99_ms"]))
for name, label in (("noop-light", "no-op, platform"), ("bare-light", "no-op, bare grpc-swift"),
                    ("submit-light-direct", "SubmitHelpRequest, direct"), ("submit-light-gateway", "SubmitHelpRequest, gateway")):
    run = light[name]
    row(f"  {label} ({run['ok']} calls)", f0(run["rate_per_s"]), f2(run["p50_ms"]), f2(run["p99_ms"]), cpu(run))
r = results["ratios"]
print(f"light: submit p50 - pgbench 1-client p50 = {r['light_submit_p50_over_pgbench1_ms']:+.2f} ms (target <= +0.5); "
      f"the gateway adds {r['light_gateway_added_p50_ms']:+.2f} ms at p50 (target <= 0.3); "
      f"platform no-op / bare {r['noop_over_bare']:.2f} (target >= 0.8; rounds "
      f"{', '.join(f'{a / b:.2f}' for a, b in zip(noop_h2load['rounds'], bare_h2load['rounds']))})")
print(f"ratios: submit/pgbench {r['submit_over_pgbench']:.2f}, submit/no-op {r['submit_over_noop']:.3f}, "
      f"gateway/direct {r['gateway_over_direct']:.2f} (+{r['gateway_added_p50_ms']:.2f} ms p50), "
      f"overload goodput/direct {r['overload_goodput_over_direct']:.2f}")
print(f"checkpoint: upload/\\copy {r['upload_over_copy']:.2f}, gateway/direct {r['upload_gateway_over_direct']:.2f}; "
      f"rows stored {[uploads[n]['rows_in_database'] for n in uploads]}")
print(f"pricewatch: ingest/\\copy {r['prices_ingest_over_copy']:.2f} ({prices['batch']} a call); "
      f"rows stored {[run['rows_in_database'] for run in price_runs.values()]}; "
      f"series over {aggregated:,} aggregated observations")
print(f"overload: {overload['not_ok']} refused or failed, refused in p50 {overload['not_ok_p50_ms']:.2f} ms / "
      f"p99 {overload['not_ok_p99_ms']:.2f} ms; statuses {overload['codes']}")
print(f"peak memory MiB: {results['memory_peak_mib']}")
print(f"statuses: direct {direct['codes']}, gateway {gateway['codes']}; rows stored "
      f"{direct['rows_in_database']}, {gateway['rows_in_database']}, {overload['rows_in_database']}")
print(f"written: {out}/results.json")
