"""Interop tests: Python's grpcio against a real `kangyi dev` process on real ports.

The process runs on free ports, with its own data folder and its own database on the test cluster
(`KANGYI_TEST_DATABASE_URL`, which `make test` sets), and is stopped with SIGTERM at the end.
"""
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
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".build-python"))  # stubs of our protos (scripts/venv.sh)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from signing import signing_channel  # noqa: E402


def fresh_database(label):
    cluster = os.environ["KANGYI_TEST_DATABASE_URL"]
    name = f"{label}_{secrets.token_hex(6)}"
    subprocess.run(["psql", cluster, "-q", "-c", f'CREATE DATABASE "{name}"'], check=True)
    return cluster.rsplit("/", 1)[0] + "/" + name


class Kangyi:
    """A running `kangyi dev`: its addresses (from dev.json) and its log."""

    def __init__(self, tmp):
        self.data = tmp
        self.log_path = tmp / "kangyi.log"
        env = dict(os.environ, KANGYI_DATA_DIR=str(tmp), KANGYI_DATABASE_URL=fresh_database("interop"))
        self.process = subprocess.Popen(
            [os.environ.get("KANGYI_BIN", str(ROOT / ".build/debug/kangyi")), "dev", "--ephemeral-ports"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))
        deadline = time.time() + 60
        dev = tmp / "dev.json"
        while not dev.exists():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"kangyi dev did not start:\n{self.log()}")
            time.sleep(0.1)
        self.info = json.loads(dev.read_text())
        self.addresses = {s["name"]: s["grpc"] for s in self.info["services"]}
        self.identity_key = base64.b64decode((tmp / "identity.key").read_text())

    def channel(self, service="intake"):
        """A channel to a backend as a peer service would open it: identity claims get signed."""
        return signing_channel(self.addresses[service], self.identity_key)

    def raw_channel(self, service="intake"):
        """A channel that signs nothing: what any process that can reach the port could send."""
        return grpc.insecure_channel(self.addresses[service])

    def log(self):
        return self.log_path.read_text()

    def log_lines(self):
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture(scope="session")
def kangyi(tmp_path_factory):
    server = Kangyi(tmp_path_factory.mktemp("kangyi"))
    yield server
    if server.process.poll() is None:
        server.stop()
