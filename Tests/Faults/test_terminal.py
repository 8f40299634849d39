"""The C terminal client (kangyi-terminal) under faults, each in the middle of an upload: the gateway killed
(-9) and started again, checkpoint killed (-9) and started again, the database crashed and started again,
and the terminal itself killed (-9) and started again with the same input. Every log is stored exactly once
and none is missing."""
import datetime
import json
import os
import signal
import subprocess
import time

import grpc

from conftest import Cluster, figure
from kangyi_testing import KANGYI, ROOT, wait_for
from kangyi.checkpoint.v1 import checkpoint_pb2 as cpb, checkpoint_pb2_grpc

TERMINAL = os.environ.get("KANGYI_TERMINAL_BIN", str(ROOT / ".build/debug/kangyi-terminal"))
LOGS = 10_000


def token(env, *args):
    out = subprocess.run([KANGYI, "token", "create", "--json", *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["token"]


def setup(deployment, tmp_path, terminal):
    """checkpoint and gateway as their own processes; `terminal` registered; its token; its input file.
    Returns the database URL, the two servers and the terminal's command line."""
    env, url, serve = deployment
    checkpoint = serve("checkpoint")
    gateway = serve("gateway", KANGYI_CHECKPOINT_ADDRESS=checkpoint.address)
    operator = token(env, "--kind", "checkpoint-operator", "--caller", "op-faults")
    stub = checkpoint_pb2_grpc.CheckpointServiceStub(grpc.insecure_channel(gateway.address))
    stub.RegisterTerminal(cpb.RegisterTerminalRequest(terminal_id=terminal, checkpoint="ZZ-YAOJIA"),
                          metadata=[("authorization", f"Bearer {operator}")], timeout=10)
    now = datetime.datetime.now(datetime.timezone.utc)
    source = tmp_path / "logs.jsonl"
    with open(source, "w") as out:
        for n in range(1, LOGS + 1):
            out.write(json.dumps({
                "sequence": n, "plate": f"豫A{n % 100000:05d}", "plate_color": "blue", "vehicle_type": "car",
                "direction": "inbound", "occupants": [{"temperature": 36.6, "health_code": "green"}],
                "observed_at": (now - datetime.timedelta(seconds=LOGS - n)).isoformat()}) + "\n")
    command = [TERMINAL, "--terminal", terminal, "--token", token(env, "--kind", "checkpoint-terminal", "--terminal", terminal),
               "--target", gateway.address, "--spool", str(tmp_path / "spool"), "--max-backoff", "2", str(source)]
    return url, checkpoint, gateway, command


def acked(tmp_path):
    try:
        return int((tmp_path / "spool" / "acked").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def stored(url, terminal):
    rows = Cluster.sql(url, f"SELECT count(*), count(DISTINCT sequence), min(sequence), max(sequence) "
                            f"FROM checkpoint.vehicle_logs WHERE terminal_id = '{terminal}'")
    return [int(v) for v in rows.split("|")]


def upload_through(tmp_path, command, terminal_id, url, scenario, hurt, checkpoint):
    """Runs the terminal, calls `hurt()` once 500 logs are acknowledged, and checks it finishes with every
    log stored exactly once, every attempt ended by an answer or a closed connection, and `checkpoint` alive."""
    started = time.time()
    terminal = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "terminal.log", "w"))
    wait_for(lambda: acked(tmp_path) >= 500, seconds=120, what="the first acknowledgements")
    at_hurt = acked(tmp_path)
    hurt()
    code = terminal.wait(timeout=180)
    log = (tmp_path / "terminal.log").read_text()
    assert checkpoint.process.poll() is None, checkpoint.log()
    assert code == 0, log
    count, distinct, low, high = stored(url, terminal_id)
    figure(scenario, logs=LOGS, acked_when_hurt=at_hurt, stored=count, distinct=distinct,
           reconnects=log.count("retrying in"), seconds=round(time.time() - started, 2))
    assert at_hurt < LOGS, "the upload finished before the fault"
    assert "nothing from the server" not in log, log
    assert (count, distinct, low, high) == (LOGS, LOGS, 1, LOGS)
    assert os.path.getsize(tmp_path / "spool" / "spool.dat") == 0


def killed_and_restarted(server):
    """A fault: `server` killed (-9) and started again on its port 1 s later."""
    def hurt():
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        time.sleep(1.0)
        server.start()
    return hurt


def test_gateway_killed_in_the_middle_of_an_upload(deployment, tmp_path):
    url, checkpoint, gateway, command = setup(deployment, tmp_path, "FAULT-GW")
    upload_through(tmp_path, command, "FAULT-GW", url, "terminal: gateway killed (-9) mid-upload, restarted 1 s later",
                   killed_and_restarted(gateway), checkpoint)


def test_checkpoint_killed_in_the_middle_of_an_upload(deployment, tmp_path):
    url, checkpoint, _, command = setup(deployment, tmp_path, "FAULT-CP")
    upload_through(tmp_path, command, "FAULT-CP", url, "terminal: checkpoint killed (-9) mid-upload, restarted 1 s later",
                   killed_and_restarted(checkpoint), checkpoint)


def test_database_crashed_in_the_middle_of_an_upload(cluster, deployment, tmp_path):
    url, checkpoint, _, command = setup(deployment, tmp_path, "FAULT-DB")

    def hurt():
        cluster.kill()
        time.sleep(2.0)
        cluster.url = cluster.start()

    upload_through(tmp_path, command, "FAULT-DB", url, "terminal: database crashed (-9) mid-upload, restarted 2 s later", hurt,
                   checkpoint)


def test_terminal_killed_in_the_middle_and_started_again(deployment, tmp_path):
    url, _, _, command = setup(deployment, tmp_path, "FAULT-TERM")
    started = time.time()
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "terminal.log", "w"))
    wait_for(lambda: acked(tmp_path) >= 500, seconds=120, what="the first acknowledgements")
    first.send_signal(signal.SIGKILL)
    first.wait()
    at_kill = acked(tmp_path)
    assert at_kill < LOGS, "the upload finished before the terminal could be killed"
    # Started again with the same input: what the spool holds is not spooled twice, the rest is resent.
    second = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    count, distinct, low, high = stored(url, "FAULT-TERM")
    figure("terminal: killed (-9) mid-upload, started again with the same input",
           logs=LOGS, acked_when_killed=at_kill, stored=count, distinct=distinct, seconds=round(time.time() - started, 2))
    assert (count, distinct, low, high) == (LOGS, LOGS, 1, LOGS)
