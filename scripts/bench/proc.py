#!/usr/bin/env python3
"""Small measurements for scripts/bench.sh, from /proc and from tools' output.

    proc.py cpu PID...                  CPU seconds (user + system) of the processes, summed
    proc.py cpu-tree PID                the same for a process, its reaped children and its live children
    proc.py annotate RUN.json CPU0 CPU1 PG0 PG1 [GENERATOR]   adds CPU ms per call (servers, PostgreSQL,
                                        and the load generator's CPU seconds when given) to a run
    proc.py ok-count METHOD < metrics   the server's own count of OK calls of METHOD (Prometheus text)
    proc.py h2load OUT SAMPLE OK0 OK1 CPU0 CPU1   h2load's figures, checked against the server's count
    proc.py h2load-merge RUN.json...    several h2load runs of one server as one: calls over time, with
                                        each run's rate kept under "rounds"
    proc.py peak-memory NAME=PID|NAME=tree:PID...  VmHWM of each process (a tree: its largest member)
"""
import json
import os
import re
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    # after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return int(fields[1]), [int(x) for x in fields[11:15]]


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if stat(entry)[0] == int(pid):
                    found.append(entry)
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


def cpu(pids):
    return sum(sum(stat(p)[1][:2]) for p in pids) / TICK


def cpu_tree(pid):
    utime, stime, cutime, cstime = stat(pid)[1]
    return (utime + stime + cutime + cstime) / TICK + cpu(children(pid))


def hwm_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(argv):
    command = argv[1]
    if command == "cpu":
        print(f"{cpu(argv[2:]):.2f}")
    elif command == "cpu-tree":
        print(f"{cpu_tree(argv[2]):.2f}")
    elif command == "annotate":
        path = argv[2]
        servers0, servers1, pg0, pg1 = map(float, argv[3:7])
        run = json.load(open(path))
        # The counters span the whole run (warm-up included): divide by every call answered in it.
        calls = max(1, run["calls"])
        run["cpu_ms_per_call"] = {"servers": 1000 * (servers1 - servers0) / calls, "postgres": 1000 * (pg1 - pg0) / calls}
        run["cpu_seconds"] = {"servers": servers1 - servers0, "postgres": pg1 - pg0}
        if len(argv) > 7:
            run["cpu_ms_per_call"]["generator"] = 1000 * float(argv[7]) / calls
            run["cpu_seconds"]["generator"] = float(argv[7])
        json.dump(run, open(path, "w"), indent=2, sort_keys=True)
    elif command == "ok-count":
        method = argv[2]
        total = 0
        for line in sys.stdin:
            if line.startswith("kangyi_rpc_total{") and f'method="{method}"' in line and 'code="ok"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        print(total)
    elif command == "h2load":
        text, sample = open(argv[2]).read(), open(argv[3]).read()
        # "-" for the server's counts: a server that counts nothing (the bare one); only its sample is checked.
        counted = argv[4] != "-"
        ok0, ok1 = (int(argv[4]), int(argv[5])) if counted else (0, 0)
        cpu0, cpu1 = float(argv[6]), float(argv[7])
        requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", text)
        rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text).group(1))
        mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", text).group(1)
        mean_ms = float(mean[:-2]) if mean.endswith("ms") else float(mean[:-2]) / 1000 if mean.endswith("us") else float(mean[:-1]) * 1000
        succeeded = int(requests.group(4))
        served_ok = ok1 - ok0 if counted else succeeded
        grpc_ok = bool(re.search(r"^grpc-status: 0\s*$", sample, re.M | re.I))
        result = {"rate_per_s": rate, "mean_ms": mean_ms, "succeeded": succeeded, "server_ok_calls": served_ok,
                  "sample_grpc_status_0": grpc_ok, "cpu_ms_per_call": 1000 * (cpu1 - cpu0) / max(1, served_ok)}
        # h2load sees only HTTP 200s; the server's count says each was an OK gRPC call (the warm-up
        # is served too, so the server counts at least as many).
        if not grpc_ok or served_ok < succeeded:
            sys.exit(f"FAILED: h2load claimed {succeeded} successes, server counted {served_ok} OK; sample: {sample!r}")
        print(json.dumps(result, indent=2, sort_keys=True))
    elif command == "h2load-merge":
        runs = [json.load(open(path)) for path in argv[2:]]
        succeeded = sum(run["succeeded"] for run in runs)
        seconds = sum(run["succeeded"] / run["rate_per_s"] for run in runs)
        served_ok = sum(run["server_ok_calls"] for run in runs)
        result = {"rate_per_s": succeeded / seconds, "succeeded": succeeded, "server_ok_calls": served_ok,
                  "mean_ms": sum(run["mean_ms"] * run["succeeded"] for run in runs) / succeeded,
                  "sample_grpc_status_0": all(run["sample_grpc_status_0"] for run in runs),
                  "cpu_ms_per_call": sum(run["cpu_ms_per_call"] * run["server_ok_calls"] for run in runs) / served_ok,
                  "rounds": [run["rate_per_s"] for run in runs]}
        print(json.dumps(result, indent=2, sort_keys=True))
    elif command == "peak-memory":
        result = {}
        for spec in argv[2:]:
            name, pid = spec.split("=", 1)
            if pid.startswith("tree:"):
                root = pid[5:]
                result[name] = max(hwm_kib(p) for p in [root] + children(root)) / 1024
            else:
                result[name] = hwm_kib(pid) / 1024
        print(json.dumps({k: round(v, 1) for k, v in result.items()}, indent=2, sort_keys=True))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
