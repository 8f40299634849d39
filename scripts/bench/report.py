#!/usr/bin/env python3
"""Reads what scripts/bench.sh measured, checks it, prints the table and writes results.json."""
import glob
import json
import platform
import re
import sys

out, rows, gateway_rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
concurrency, seconds = int(sys.argv[4]), int(sys.argv[5])

text = open(f"{out}/pgbench.txt").read()
tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", text).group(1))
failed = re.search(r"number of failed transactions: (\d+)", text)
latencies = sorted(int(line.split()[2]) for path in glob.glob(f"{out}/pgbench.*") if not path.endswith(".txt")
                   for line in open(path))
pct = lambda values, p: values[min(len(values) - 1, int(len(values) * p))] / 1000 if values else 0.0
pgbench = {"rate_per_s": tps, "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99),
           "transactions": len(latencies), "failed": int(failed.group(1)) if failed else 0}

intake = json.load(open(f"{out}/intake.json"))
# The load generator's successes must all be rows in the database (and nothing else under its run id).
intake["rows_in_database"] = rows
if rows < intake["ok"]:
    sys.exit(f"FAILED: {intake['ok']} submissions acknowledged but only {rows} rows stored")

gateway = json.load(open(f"{out}/gateway.json"))
gateway["rows_in_database"] = gateway_rows
if gateway_rows < gateway["ok"]:
    sys.exit(f"FAILED: {gateway['ok']} submissions acknowledged through the gateway but only {gateway_rows} rows stored")

results = {
    "machine": {"cores": __import__("os").cpu_count(), "platform": platform.platform()},
    "concurrency": concurrency, "seconds": seconds,
    "intake": {"pgbench_insert": pgbench, "submit_direct": intake,
               "ratio_submit_over_pgbench": intake["rate_per_s"] / tps if tps else None},
    "gateway": {"submit_through_gateway": gateway,
                "ratio_gateway_over_direct": gateway["rate_per_s"] / intake["rate_per_s"] if intake["rate_per_s"] else None,
                "added_p50_ms": gateway["p50_ms"] - intake["p50_ms"]},
}
json.dump(results, open(f"{out}/results.json", "w"), indent=2, sort_keys=True)

print()
print(f"{'scenario':48} {'rate/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
print(f"{'pgbench: intake INSERT, 1 row/commit':48} {tps:10.0f} {pgbench['p50_ms']:8.2f} {pgbench['p99_ms']:8.2f}")
print(f"{'intake SubmitHelpRequest (direct)':48} {intake['rate_per_s']:10.0f} {intake['p50_ms']:8.2f} {intake['p99_ms']:8.2f}")
print(f"{'intake SubmitHelpRequest (through the gateway)':48} {gateway['rate_per_s']:10.0f} {gateway['p50_ms']:8.2f} {gateway['p99_ms']:8.2f}")
print(f"ratio gateway / direct: {results['gateway']['ratio_gateway_over_direct']:.2f}   "
      f"added p50: {results['gateway']['added_p50_ms']:.2f} ms   (statuses {gateway['codes']}; rows stored {gateway_rows})")
print(f"ratio submit / pgbench: {results['intake']['ratio_submit_over_pgbench']:.2f}   "
      f"(concurrency {concurrency}, {seconds}s each; statuses {intake['codes']}; rows stored {rows})")
print(f"written: {out}/results.json")
