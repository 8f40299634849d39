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
import socket
import subprocess
import sys
import threading
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".build-python"))
sys.path.insert(0, str(ROOT / "Tests" / "Interop"))

from kangyi.intake.v1 import intake_pb2 as ipb, intake_pb2_grpc  # noqa: E402
from signing import signing_channel  # noqa: E402

KANGYI = os.environ.get("KANGYI_BIN", str(ROOT / ".build/debug/kangyi"))
FIGURES = ROOT / ".data" / "faults" / "figures.json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds=20, what="condition", every=0.05):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} not met within {seconds} s")


def figure(scenario, **values):
    """Prints a scenario's figures and keeps them in .data/faults/figures.json."""
    print(f"\n[{scenario}] " + ", ".join(f"{k}={v}" for k, v in values.items()))
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[scenario] = values
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True))


class Cluster:
    """A durable embedded PostgreSQL cluster (`kangyi db start`) that a scenario may kill."""

    def __init__(self, data):
        self.data = data
        self.url = self.start()

    def start(self):
        out = subprocess.run([KANGYI, "db", "start", "--data", str(self.data)], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def postmaster(self):
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n")[0])
        except (FileNotFoundError, ValueError, PermissionError):
            return None

    def kill(self):
        """kill -9 of the postmaster and every one of its processes at once: a crash, not a shutdown."""
        root = self.postmaster()
        children = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()
        for pid in [root] + [int(c) for c in children]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self):
        subprocess.run([KANGYI, "db", "stop", "--data", str(self.data)], capture_output=True)

    def database(self, label):
        name = f"{label}_{secrets.token_hex(4)}"
        subprocess.run(["psql", self.url, "-q", "-c", f'CREATE DATABASE "{name}"'], check=True)
        return self.url.rsplit("/", 1)[0] + "/" + name

    @staticmethod
    def sql(url, query):
        return subprocess.run(["psql", url, "-At", "-c", query], check=True, capture_output=True, text=True).stdout.strip()


class Served:
    """`kangyi serve <service>` as its own process."""

    def __init__(self, service, env, log_path, port=None):
        self.service, self.log_path = service, log_path
        self.port = port or free_port()
        self.env = dict(env, KANGYI_GRPC_PORT=str(self.port), KANGYI_METRICS_PORT="0", KANGYI_HTTP_PORT="0")
        self.key = base64.b64decode(self.env["KANGYI_IDENTITY_KEY"])
        self.process = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.process = subprocess.Popen([KANGYI, "serve", self.service], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=open(self.log_path, "a"))
        wait_for(lambda: self.health() == "SERVING", seconds=60, what=f"{self.service} serving")
        return self

    def health(self):
        if self.process.poll() is not None:
            raise AssertionError(f"{self.service} exited {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            status = health_pb2_grpc.HealthStub(grpc.insecure_channel(self.address)).Check(
                health_pb2.HealthCheckRequest(), timeout=0.5).status
            return health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.RpcError:
            return "DOWN"

    def terminate(self):
        """SIGTERM; returns the seconds until the process exited and its exit code."""
        started = time.time()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return time.time() - started, code

    def rss_mib(self):
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0

    def log(self):
        return self.log_path.read_text()

    def channel(self):
        return signing_channel(self.address, self.key)


def submission(run, n, phone=None):
    return ipb.SubmitHelpRequestRequest(
        request_id=f"{run}-{n}", category="food_supply", district="420106",
        contact=ipb.Contact(phone=phone or f"139{uuid.uuid4().int % 10**8:08d}", name="赵六"),
        description=f"家里断粮了，请帮忙 {uuid.uuid4()}", urgency=ipb.URGENCY_URGENT)


class Load:
    """`callers` threads submitting as fast as they are answered; remembers every acknowledged id."""

    def __init__(self, address, key, callers=8, timeout=3.0):
        self.run = f"load-{secrets.token_hex(3)}"
        self.acked, self.codes, self.started_calls = {}, {}, 0
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._caller, args=(i, address, key, timeout), daemon=True)
                        for i in range(callers)]

    def _caller(self, index, address, key, timeout):
        stub = intake_pb2_grpc.IntakeServiceStub(signing_channel(address, key))
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            request = submission(self.run, f"{index}-{n}")
            try:
                answer = stub.SubmitHelpRequest(request, timeout=timeout)
                code = "OK"
                with self.lock:
                    self.acked[request.request_id] = answer.help_request.id
            except grpc.RpcError as error:
                code = error.code().name
                time.sleep(0.05)
            with self.lock:
                self.codes[code] = self.codes.get(code, 0) + 1

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
