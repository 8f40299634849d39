"""The fault suite: real `kangyi serve` processes over a real, durable PostgreSQL cluster of their own,
hurt the way production hurts them — the database killed, slowed or stopped, peers gone, SIGTERM mid-load —
with Python grpcio as the outside caller. Each scenario prints its figures (`make faults` shows them).
"""
import base64
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "Interop"))

from kangyi_testing import KANGYI, ROOT, Served, help_request  # noqa: E402  (puts the stubs on the path)
from kangyi.intake.v1 import intake_pb2_grpc  # noqa: E402
from signing import signing_channel  # noqa: E402

FIGURES = ROOT / ".data" / "faults" / "figures.json"


def figure(scenario, **values):
    """Prints a scenario's figures and keeps them in .data/faults/figures.json."""
    print(f"\n[{scenario}] " + ", ".join(f"{k}={v}" for k, v in values.items()))
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[scenario] = values
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True))


def signal_cluster(data, number):
    """Sends `number` to a cluster's postmaster and every one of its processes at once."""
    root = int((data / "postmaster.pid").read_text().split("\n")[0])
    children = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()
    for pid in [root] + [int(c) for c in children]:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass


def crash(data):
    """kill -9 of a cluster's postmaster and every one of its processes at once: a crash, not a shutdown."""
    signal_cluster(data, signal.SIGKILL)


class Cluster:
    """A durable embedded PostgreSQL cluster (`kangyi db start`) that a scenario may kill."""

    def __init__(self, data):
        self.data = data
        self.url = self.start()

    def start(self):
        out = subprocess.run([KANGYI, "db", "start", "--data", str(self.data)], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def kill(self):
        crash(self.data)

    def freeze(self):
        """SIGSTOP: its kernel still completes TCP handshakes, and nothing answers — a hung host."""
        signal_cluster(self.data, signal.SIGSTOP)

    def thaw(self):
        signal_cluster(self.data, signal.SIGCONT)

    def stop(self):
        subprocess.run([KANGYI, "db", "stop", "--data", str(self.data)], capture_output=True)

    def database(self, label):
        name = f"{label}_{secrets.token_hex(4)}"
        subprocess.run(["psql", self.url, "-q", "-c", f'CREATE DATABASE "{name}"'], check=True)
        return self.url.rsplit("/", 1)[0] + "/" + name

    @staticmethod
    def sql(url, query):
        return subprocess.run(["psql", url, "-At", "-c", query], check=True, capture_output=True, text=True).stdout.strip()


def submission(run, n):
    """A help request with its own phone and text, so that no two are linked as repeats."""
    return help_request(f"{run}-{n}", phone=f"139{uuid.uuid4().int % 10**8:08d}", text=f"家里断粮了，请帮忙 {uuid.uuid4()}")


class Load:
    """`callers` threads submitting as fast as they are answered; remembers every acknowledged id and every
    call's (start, end, code). Calls are signed under `key` (straight to a service), or carry `metadata`
    (a bearer token, through the gateway)."""

    def __init__(self, address, key, callers=8, timeout=3.0, metadata=None):
        self.run = f"load-{secrets.token_hex(3)}"
        self.metadata = metadata
        self.acked, self.codes, self.started_calls, self.calls = {}, {}, 0, []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._caller, args=(i, address, key, timeout), daemon=True)
                        for i in range(callers)]

    def _caller(self, index, address, key, timeout):
        stub = intake_pb2_grpc.IntakeServiceStub(signing_channel(address, key) if key else grpc.insecure_channel(address))
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            request = submission(self.run, f"{index}-{n}")
            started = time.time()
            try:
                answer = stub.SubmitHelpRequest(request, timeout=timeout, metadata=self.metadata)
                code = "OK"
                with self.lock:
                    self.acked[request.request_id] = answer.help_request.id
            except grpc.RpcError as error:
                code = error.code().name
                time.sleep(0.05)
            with self.lock:
                self.codes[code] = self.codes.get(code, 0) + 1
                self.calls.append((started, time.time(), code))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def ok_count(self):
        with self.lock:
            return self.codes.get("OK", 0)


@pytest.fixture(scope="session")
def cluster():
    cluster = Cluster(ROOT / ".data" / "faults-pg")
    yield cluster
    cluster.stop()


@pytest.fixture()
def deployment(cluster, tmp_path):
    """Environment for one scenario's processes: its own database, one identity key."""
    url = cluster.database("faults")
    env = dict(os.environ, KANGYI_DATABASE_URL=url, KANGYI_IDENTITY_KEY=base64.b64encode(os.urandom(32)).decode(),
               KANGYI_HEALTH_PROBE_MS="200", KANGYI_BACKGROUND_POLL_MS="200", KANGYI_SHUTDOWN_GRACE_S="10")
    subprocess.run([KANGYI, "migrate"], env=env, check=True, capture_output=True)
    servers = []

    def serve(service, **extra):
        server = Served(service, dict(env, **extra), tmp_path / f"{service}.log")
        servers.append(server)
        return server.start()

    yield env, url, serve
    for server in servers:
        if server.process and server.process.poll() is None:
            server.process.kill()
