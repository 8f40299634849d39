"""What the Python suites (interop, faults, fuzz) share: `kangyi dev` and `kangyi serve` as processes,
databases on the test cluster, waiting, free ports, and the help request they submit."""
import base64
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".build-python"))  # stubs of our protos (scripts/venv.sh)
sys.path.append(str(ROOT / "scripts"))  # free_port, shared with the bench

from kangyi.intake.v1 import intake_pb2  # noqa: E402
from signing import signing_channel  # noqa: E402
from free_port import free_port  # noqa: E402,F401  (the suites import it from here)

KANGYI = os.environ.get("KANGYI_BIN", str(ROOT / ".build/debug/kangyi"))


def wait_for(condition, seconds=20, what="condition", every=0.05):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} not met within {seconds} s")


def fresh_database(label):
    cluster = os.environ["KANGYI_TEST_DATABASE_URL"]
    name = f"{label}_{secrets.token_hex(6)}"
    subprocess.run(["psql", cluster, "-q", "-c", f'CREATE DATABASE "{name}"'], check=True)
    return cluster.rsplit("/", 1)[0] + "/" + name


def migrate(url, **settings):
    """`kangyi migrate` on `url` (as whoever the URL names), before any server starts."""
    subprocess.run([KANGYI, "migrate"], env=dict(os.environ, KANGYI_DATABASE_URL=url, **settings), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return url


def psql(url, *sql):
    """Runs each statement in one psql session (stopping at the first error); unaligned, tuples only."""
    command = ["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    for statement in sql:
        command += ["-c", statement]
    return subprocess.run(command, capture_output=True, text=True)


class Kangyi:
    """A running `kangyi dev`: its addresses (from dev.json) and its log."""

    def __init__(self, tmp, label="interop", **settings):
        self.data = tmp
        self.log_path = tmp / "kangyi.log"
        self.database_url = fresh_database(label)
        env = dict(os.environ, KANGYI_DATA_DIR=str(tmp), KANGYI_DATABASE_URL=self.database_url, **settings)
        self.process = subprocess.Popen(
            [KANGYI, "dev", "--ephemeral-ports"], env=env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))
        deadline = time.time() + 60
        dev = tmp / "dev.json"
        while not dev.exists():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"kangyi dev did not start:\n{self.log()}")
            time.sleep(0.1)
        self.info = json.loads(dev.read_text())
        self.addresses = {s["name"]: s["grpc"] for s in self.info["services"]}
        self.identity_key = base64.b64decode((tmp / "identity.key").read_text())
        self.raw_channels = {}

    def channel(self, service="intake"):
        """A channel to a backend as a peer service would open it: identity claims get signed."""
        return signing_channel(self.addresses[service], self.identity_key)

    def raw_channel(self, service="intake"):
        """A channel that signs nothing: what any process that can reach the port could send (one per
        service, reused)."""
        if service not in self.raw_channels:
            self.raw_channels[service] = grpc.insecure_channel(self.addresses[service])
        return self.raw_channels[service]

    def log(self):
        return self.log_path.read_text()

    def log_lines(self):
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


def help_request(request_id, phone="13812345678", text="小区封控，家中老人缺少降压药，请帮忙购买"):
    return intake_pb2.SubmitHelpRequestRequest(
        request_id=request_id, category="medical", district="410102",
        contact=intake_pb2.Contact(phone=phone, name="李四"), description=text,
        urgency=intake_pb2.URGENCY_CRITICAL, special_groups=[intake_pb2.SPECIAL_GROUP_ELDERLY])


class Served:
    """`kangyi serve <service>` as its own OS process, on `port` (a free one by default)."""

    def __init__(self, service, env, log_path, port=None, tls_root=None):
        self.service, self.log_path, self.tls_root = service, log_path, tls_root
        self.port = port or free_port()
        # Every service of a deployment shares one identity key.
        self.env = dict(env, KANGYI_IDENTITY_KEY=env.get("KANGYI_IDENTITY_KEY") or base64.b64encode(os.urandom(32)).decode(),
                        KANGYI_GRPC_PORT=str(self.port), KANGYI_METRICS_PORT="0")
        self.env.setdefault("KANGYI_HTTP_PORT", "0")
        self.key = base64.b64decode(self.env["KANGYI_IDENTITY_KEY"])
        self.process = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def launch(self):
        """Starts the process without waiting for it to serve."""
        self.process = subprocess.Popen([KANGYI, "serve", self.service], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=open(self.log_path, "a"))
        return self

    def start(self):
        self.launch()
        wait_for(lambda: self.health() == "SERVING", seconds=60, what=f"{self.service} serving")
        return self

    def health(self):
        """SERVING, NOT_SERVING, or DOWN when it does not answer; fails if the process has exited."""
        if self.process.poll() is not None:
            raise AssertionError(f"{self.service} exited {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
        channel = (grpc.secure_channel(self.address, grpc.ssl_channel_credentials(root_certificates=self.tls_root))
                   if self.tls_root else grpc.insecure_channel(self.address))
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
            return health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.RpcError:
            return "DOWN"
        finally:
            channel.close()

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

    def stop(self):
        seconds, code = self.terminate()
        assert code == 0 and seconds < 30, f"{self.service} stopped with {code} after {seconds:.1f} s"

    def rss_mib(self):
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0

    def log(self):
        return self.log_path.read_text()

    def channel(self):
        """A channel as a peer service opens it: identity claims get signed."""
        return signing_channel(self.address, self.key)
