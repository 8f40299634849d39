"""Followers killed mid-feed: verification follows intake's feed of help requests into cases, tracing
checkpoint's feed of flagged vehicles into tasks. Each, killed (-9) three times while its feed grows and
started again each time, must end with exactly one row per item of the feed — none missed, none twice —
whatever the kill interrupted (a page half applied, a cursor not yet saved)."""
import base64
import os
import secrets
import signal
import threading
import time

import grpc
from google.protobuf import timestamp_pb2

from conftest import Cluster, Load, figure
from kangyi_testing import wait_for
from kangyi.checkpoint.v1 import checkpoint_pb2 as cpb, checkpoint_pb2_grpc
from signing import signing_channel


def test_verification_killed_while_following_intakes_feed(deployment):
    env, url, serve = deployment
    intake = serve("intake")
    verification = serve("verification", KANGYI_INTAKE_ADDRESS=intake.address)
    kills = 0
    with Load(intake.address, intake.key, callers=6) as load:
        for _ in range(3):
            time.sleep(1.5)
            verification.process.send_signal(signal.SIGKILL)
            verification.process.wait(timeout=10)
            kills += 1
            time.sleep(0.3)
            verification.start()
        time.sleep(1.0)
    stored = int(Cluster.sql(url, "SELECT count(*) FROM intake.help_requests"))
    wait_for(lambda: int(Cluster.sql(url, "SELECT count(*) FROM verification.cases")) >= stored, seconds=30,
             what="a case for every help request")
    cases = int(Cluster.sql(url, "SELECT count(*) FROM verification.cases"))
    doubled = int(Cluster.sql(url, "SELECT count(*) FROM (SELECT ticket FROM verification.cases GROUP BY ticket HAVING count(*) > 1) d"))
    missing = int(Cluster.sql(url, "SELECT count(*) FROM intake.help_requests h WHERE NOT EXISTS "
                                   "(SELECT 1 FROM verification.cases c WHERE c.id = h.id)"))
    figure("verification killed mid-feed", kills=kills, acknowledged=len(load.acked), stored=stored, cases=cases,
           doubled=doubled, missing=missing)
    assert len(load.acked) > 0 and stored >= len(load.acked)
    assert cases == stored and doubled == 0 and missing == 0



def test_tracing_killed_while_following_checkpoints_flagged_feed(deployment):
    """The same for tracing, which opens a task for the driver of each vehicle checkpoint flags (here every
    log: a fever)."""
    env, url, serve = deployment
    keys = {"KANGYI_PII_KEY": base64.b64encode(os.urandom(32)).decode(),
            "KANGYI_PII_INDEX_KEY": base64.b64encode(os.urandom(32)).decode()}
    checkpoint = serve("checkpoint")
    tracing = serve("tracing", KANGYI_CHECKPOINT_ADDRESS=checkpoint.address, **keys)
    stub = checkpoint_pb2_grpc.CheckpointServiceStub(signing_channel(checkpoint.address, checkpoint.key))
    terminal = f"KILL-{secrets.token_hex(3)}"
    stub.RegisterTerminal(cpb.RegisterTerminalRequest(terminal_id=terminal, checkpoint="ZZ-YAOJIA"),
                          metadata=[("x-kangyi-caller", "op-kill")], timeout=10)
    recorded, stop = [], threading.Event()

    def record():
        n = 0
        while not stop.is_set():
            n += 1
            observed = timestamp_pb2.Timestamp()
            observed.FromSeconds(int(time.time()) - 60)
            log = cpb.VehicleLog(terminal_id=terminal, sequence=n, plate=f"豫A{n:05d}", plate_color=cpb.PLATE_COLOR_BLUE,
                                 vehicle_type=cpb.VEHICLE_TYPE_CAR, direction=cpb.DIRECTION_INBOUND,
                                 occupants=[cpb.Occupant(temperature_decidegrees=385, health_code=cpb.HEALTH_CODE_GREEN)],
                                 driver_phone=f"139{n:08d}", observed_at=observed)
            try:
                stub.RecordVehicleLog(cpb.RecordVehicleLogRequest(log=log), metadata=[("x-kangyi-caller", f"terminal.{terminal}")],
                                      timeout=3)
                recorded.append(n)
            except grpc.RpcError:
                n -= 1  # the same sequence again: a terminal resends what was not acknowledged
                time.sleep(0.05)

    writer = threading.Thread(target=record, daemon=True)
    writer.start()
    try:
        for _ in range(3):
            time.sleep(1.5)
            tracing.process.send_signal(signal.SIGKILL)
            tracing.process.wait(timeout=10)
            time.sleep(0.3)
            tracing.start()
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join(timeout=10)
    flagged = int(Cluster.sql(url, f"SELECT count(*) FROM checkpoint.vehicle_logs WHERE terminal_id = '{terminal}'"))
    query = f"SELECT count(*) FROM tracing.tasks WHERE terminal_id = '{terminal}'"
    wait_for(lambda: int(Cluster.sql(url, query)) >= flagged, seconds=30, what="a task for every flagged log")
    tasks = int(Cluster.sql(url, query))
    figure("tracing killed mid-feed", kills=3, acknowledged=len(recorded), flagged=flagged, tasks=tasks)
    assert len(recorded) > 0 and flagged >= len(recorded) and tasks == flagged
