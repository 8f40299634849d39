"""The checkpoint service from outside: a grpcio bidirectional upload with a terminal's token through the
gateway (a resend, a conflict and a rejected log mid-stream), a terminal that claims another's logs,
scopes per caller kind, the JSON door, and a police analyst's queries straight to the backend."""
import base64
import contextlib
import datetime
import json
import os
import subprocess

import grpc
import pytest
from google.protobuf import timestamp_pb2

from kangyi_testing import KANGYI, ROOT, Served, free_port
from kangyi.checkpoint.v1 import checkpoint_pb2 as cpb, checkpoint_pb2_grpc
from kangyi.common.v1 import common_pb2
from test_gateway import curl, gateway, new_token

SERVICE = "kangyi.checkpoint.v1.CheckpointService"
TERMINAL = os.environ.get("KANGYI_TERMINAL_BIN", str(ROOT / ".build/debug/kangyi-terminal"))


def stamp(seconds_ago=60):
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago))
    return ts


def log(terminal, sequence, plate="豫A12345", temperature=366, code=cpb.HEALTH_CODE_GREEN, observed=None):
    return cpb.VehicleLog(
        terminal_id=terminal, sequence=sequence, plate=plate, plate_color=cpb.PLATE_COLOR_BLUE,
        vehicle_type=cpb.VEHICLE_TYPE_CAR, direction=cpb.DIRECTION_INBOUND,
        occupants=[cpb.Occupant(temperature_decidegrees=temperature, health_code=code)],
        observed_at=observed or stamp())


@pytest.fixture(scope="module")
def terminals(kangyi):
    """Two registered terminals at the Yaojia exit, each with its own token, and an analyst's token."""
    stub = checkpoint_pb2_grpc.CheckpointServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    operator = [("authorization", "Bearer " + new_token(kangyi, "--kind", "checkpoint-operator", "--caller", "op-1"))]
    for terminal in ("YJ-01", "YJ-02"):
        stub.RegisterTerminal(cpb.RegisterTerminalRequest(terminal_id=terminal, checkpoint="ZZ-YAOJIA"), metadata=operator, timeout=10)
    tokens = {t: new_token(kangyi, "--kind", "checkpoint-terminal", "--terminal", t) for t in ("YJ-01", "YJ-02")}
    analyst = new_token(kangyi, "--kind", "department-system", "--caller", "police-1")
    return stub, tokens, analyst


def upload(stub, token, logs):
    responses = stub.UploadVehicleLogs(
        iter([cpb.UploadVehicleLogsRequest(log=l) for l in logs]), metadata=[("authorization", f"Bearer {token}")], timeout=30)
    return list(responses)


def test_bidirectional_upload_resend_conflict_and_rejection(terminals):
    stub, tokens, analyst = terminals
    logs = [log("YJ-01", n, plate=f"豫A{20000 + n}") for n in range(1, 501)]
    first = upload(stub, tokens["YJ-01"], logs[:400])
    assert first[-1].acked_through == 400 and first[-1].stored == 400
    assert len(first) < 400, "acknowledged per commit, not per log"

    bad = log("YJ-01", 402, plate="not a plate", temperature=999)
    changed = log("YJ-01", 400, plate="豫A99999")  # another log under a used sequence
    second = upload(stub, tokens["YJ-01"], logs[390:400] + [logs[400], bad] + logs[402:])
    items = {item.sequence: item for r in second for item in r.items}
    assert items[402].outcome == cpb.ItemResult.OUTCOME_REJECTED
    assert {v.field for v in items[402].violations} == {"log.plate", "log.occupants[0].temperature_decidegrees"}
    assert second[-1].acked_through == 500
    assert second[-1].replayed == 10 and second[-1].stored == 99

    third = upload(stub, tokens["YJ-01"], [changed])
    assert third[-1].items[0].outcome == cpb.ItemResult.OUTCOME_CONFLICT
    assert third[-1].acked_through == 400

    listed = stub.ListVehicleLogs(cpb.ListVehicleLogsRequest(plate="豫A20001"),
                                  metadata=[("authorization", f"Bearer {analyst}")], timeout=10)
    assert [v.log.sequence for v in listed.vehicle_logs] == [1]


def test_a_backlog_in_batches(terminals):
    """A terminal back online sends its backlog many logs a message (`logs`): settled as if one by one,
    and a batch smuggling another terminal's log ends the stream PERMISSION_DENIED."""
    stub, tokens, _ = terminals
    logs = [log("YJ-02", n, plate=f"豫A{30000 + n % 1000}") for n in range(5001, 5301)]
    batches = [cpb.UploadVehicleLogsRequest(logs=logs[i:min(i + 64, 250)]) for i in range(0, 250, 64)]
    first = list(stub.UploadVehicleLogs(iter(batches), metadata=[("authorization", f"Bearer {tokens['YJ-02']}")], timeout=30))
    assert first[-1].acked_through == 5250 and first[-1].stored == 250
    again = [cpb.UploadVehicleLogsRequest(log=logs[199], logs=logs[200:])]  # `log` first, then `logs`
    second = list(stub.UploadVehicleLogs(iter(again), metadata=[("authorization", f"Bearer {tokens['YJ-02']}")], timeout=30))
    assert second[-1].acked_through == 5300 and second[-1].replayed == 51 and second[-1].stored == 50
    smuggled = [cpb.UploadVehicleLogsRequest(logs=[log("YJ-02", 5301), log("YJ-01", 9100)])]
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.UploadVehicleLogs(iter(smuggled), metadata=[("authorization", f"Bearer {tokens['YJ-02']}")], timeout=30))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_terminal_uploads_only_as_itself(terminals):
    stub, tokens, _ = terminals
    with pytest.raises(grpc.RpcError) as refused:
        upload(stub, tokens["YJ-02"], [log("YJ-01", 9001)])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as unary:
        stub.RecordVehicleLog(cpb.RecordVehicleLogRequest(log=log("YJ-01", 9002)),
                              metadata=[("authorization", f"Bearer {tokens['YJ-02']}")], timeout=10)
    assert unary.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A terminal reads nothing; an analyst uploads nothing.
    with pytest.raises(grpc.RpcError) as read:
        stub.ListVehicleLogs(cpb.ListVehicleLogsRequest(), metadata=[("authorization", f"Bearer {tokens['YJ-01']}")], timeout=10)
    assert read.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_every_caller_kind_against_every_method(kangyi, terminals):
    """Each kind's token reaches exactly the methods of its scopes; the rest are PERMISSION_DENIED."""
    stub, _, _ = terminals
    allowed = {
        "checkpoint-terminal": {"UploadVehicleLogs", "RecordVehicleLog"},
        "checkpoint-operator": {"ListVehicleLogs", "GetPlateHistory", "WatchFlaggedVehicles", "GetCheckpointStatistics",
                                "ExportVehicleLogs", "ListCheckpoints", "ListTerminals", "ListRiskAreas", "ListWatchedPlates",
                                "SetCheckpoint", "RegisterTerminal", "RetireTerminal", "SetRiskArea", "WatchPlate", "UnwatchPlate"},
        "citizen-frontend": set(),
        "staff-tool": set(),
    }
    for kind, methods in allowed.items():
        args = ["--kind", kind] + (["--terminal", "YJ-02"] if kind == "checkpoint-terminal" else ["--caller", f"k-{kind}"])
        token = new_token(kangyi, *args)
        for method in cpb.DESCRIPTOR.services_by_name["CheckpointService"].methods:
            if method.client_streaming:  # not on the JSON door (501); its gRPC scope is checked above
                continue
            # An empty JSON body through the door: refused by scope before the backend sees it, or answered by it.
            status, head, body = curl(kangyi, f"{SERVICE}/{method.name}", {}, token=token, max_time=5)
            if method.name in methods:
                assert status != 403, f"{kind} {method.name}: {status} {body[:200]}"
            else:
                assert status == 403, f"{kind} {method.name}: {status} {body[:200]}"


def test_the_json_door_records_and_exports(kangyi, terminals):
    _, tokens, analyst = terminals
    body = {"log": {"terminalId": "YJ-02", "sequence": "1", "plate": "鄂a 54321", "plateColor": "PLATE_COLOR_BLUE",
                    "vehicleType": "VEHICLE_TYPE_LORRY", "direction": "DIRECTION_INBOUND", "originCode": "420100",
                    "occupants": [{"temperatureDecidegrees": 378, "healthCode": "HEALTH_CODE_GREEN"}],
                    "driverPhone": "13912345678", "observedAt": (datetime.datetime.now(datetime.timezone.utc)
                                                                 - datetime.timedelta(minutes=5)).isoformat()}}
    status, _, text = curl(kangyi, f"{SERVICE}/RecordVehicleLog", body, token=tokens["YJ-02"])
    assert status == 200, text
    stored = json.loads(text)["vehicleLog"]
    assert stored["log"]["plate"] == "鄂A54321"
    assert stored["log"]["driverPhone"] == "139****5678"
    assert stored["flags"] == ["FLAG_FEVER"]
    assert stored["originProvince"] == "420000"
    status, _, text = curl(kangyi, f"{SERVICE}/RecordVehicleLog", body, token=tokens["YJ-02"])
    assert status == 200 and json.loads(text)["replayed"] is True

    now = datetime.datetime.now(datetime.timezone.utc)
    export = {"observed": {"start": (now - datetime.timedelta(days=1)).isoformat(), "end": (now + datetime.timedelta(hours=1)).isoformat()},
              "checkpoint": "ZZ-YAOJIA"}
    status, _, text = curl(kangyi, f"{SERVICE}/ExportVehicleLogs", export, token=analyst, max_time=20)
    assert status == 200, text
    assert "鄂A54321" in text

    status, _, text = curl(kangyi, f"{SERVICE}/RecordVehicleLog", {"log": {"terminalId": "YJ-02", "sequence": "2"}}, token=tokens["YJ-02"])
    assert status == 400
    fields = {v["field"] for d in json.loads(text)["error"]["details"] for v in d.get("fieldViolations", [])}
    assert {"log.plate", "log.plate_color", "log.occupants", "log.observed_at"} <= fields, text


def test_a_log_wrong_everywhere_is_answered_within_what_clients_accept(kangyi, terminals):
    """A log with 99 occupants, each wrong, is refused with its first violations named and the rest
    counted: trailers grpcio reads (it refuses more than 16 KiB; they once came to 17.8), straight and
    through the gateway — whose next calls to checkpoint are answered as before (a backend's oversized
    answer once left the gateway's connection to it hung)."""
    stub, tokens, analyst = terminals
    bad = log("YJ-02", 1, plate="not a plate")
    del bad.occupants[:]
    bad.occupants.extend(cpb.Occupant(temperature_decidegrees=2**31 - 1, health_code=999) for _ in range(99))
    request = cpb.RecordVehicleLogRequest(log=bad)
    direct = checkpoint_pb2_grpc.CheckpointServiceStub(kangyi.channel("checkpoint"))
    ways = {"direct": lambda: direct.RecordVehicleLog(
                request, metadata=[("x-kangyi-caller", "YJ-02"), ("x-kangyi-scopes", "checkpoint.ingest")], timeout=10),
            "gateway": lambda: stub.RecordVehicleLog(
                request, metadata=[("authorization", f"Bearer {tokens['YJ-02']}")], timeout=10)}
    for way, call in ways.items():
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (way, refused.value.details())
            assert refused.value.details().startswith("log.plate: ") and refused.value.details().endswith(" more"), way
            trailers = dict(refused.value.trailing_metadata())
            size = sum(len(k) + len(v) for k, v in refused.value.trailing_metadata()) + len(refused.value.details())
            assert size < 8 * 1024, (way, size)
            assert b"log.occupants[0].temperature_decidegrees" in trailers["grpc-status-details-bin"], way
            listed = stub.ListCheckpoints(cpb.ListCheckpointsRequest(), timeout=5,
                                          metadata=[("authorization", f"Bearer {analyst}")])
            assert any(c.code == "ZZ-YAOJIA" for c in listed.checkpoints)


def test_statistics_straight_from_the_backend_with_a_signed_identity(kangyi, terminals):
    stub = checkpoint_pb2_grpc.CheckpointServiceStub(kangyi.channel("checkpoint"))
    staff = [("x-kangyi-caller", "police-2"), ("x-kangyi-scopes", "checkpoint.read")]
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(now - datetime.timedelta(days=2))
    end.FromDatetime(now + datetime.timedelta(hours=1))
    stats = stub.GetCheckpointStatistics(cpb.GetCheckpointStatisticsRequest(
        checkpoint="ZZ-YAOJIA", granularity=cpb.GRANULARITY_DAY,
        observed=common_pb2.TimeRange(start=start, end=end)), metadata=staff, timeout=10)
    assert sum(row.vehicles for row in stats.rows) >= 500
    # Unsigned, the same claims are refused.
    raw = checkpoint_pb2_grpc.CheckpointServiceStub(kangyi.raw_channel("checkpoint"))
    with pytest.raises(grpc.RpcError) as refused:
        raw.ListVehicleLogs(cpb.ListVehicleLogsRequest(), metadata=staff, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@contextlib.contextmanager
def own_gateway(kangyi, tmp_path, tls_root=None, **settings):
    """A gateway process of its own over the suite's database and identity key, with `settings` (KANGYI_*)
    added; yields its port and stops it after."""
    env = dict(os.environ, KANGYI_DATABASE_URL=kangyi.info["database_url"],
               KANGYI_IDENTITY_KEY=base64.b64encode(kangyi.identity_key).decode(), KANGYI_HTTP_PORT="0", **settings)
    port = free_port()
    server = Served("gateway", env, tmp_path / "gateway.log", port=port, tls_root=tls_root)
    server.start()
    try:
        yield port
    finally:
        server.stop()


def logs_csv(path, sequences, plates_from=0, temperatures="36.5", codes="green", apart=datetime.timedelta(minutes=1)):
    """kangyi-terminal's CSV input: a log per sequence n, plate 豫A(plates_from + n), observed n × `apart` ago."""
    now = datetime.datetime.now(datetime.timezone.utc)
    path.write_text("sequence,plate,plate_color,vehicle_type,direction,temperatures,health_codes,observed_at\n" + "".join(
        f"{n},豫A{plates_from + n:05d},blue,car,inbound,{temperatures},{codes},{(now - n * apart).isoformat()}\n" for n in sequences))
    return path


def test_the_c_terminal_uploads_over_tls(kangyi, terminals, tmp_path):
    """kangyi-terminal against a gateway serving TLS (ALPN h2, the certificate checked against its CA file)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    with own_gateway(kangyi, tmp_path, tls_root=cert.read_bytes(), KANGYI_TLS_CERT=str(cert), KANGYI_TLS_KEY=str(key),
                     KANGYI_CHECKPOINT_ADDRESS=kangyi.addresses["checkpoint"]) as port:
        lines = logs_csv(tmp_path / "logs.csv", range(101, 151), plates_from=70000, temperatures="36.5;37.9", codes="green;yellow")
        _, tokens, _ = terminals
        base = [TERMINAL, "--terminal", "YJ-02", "--token", tokens["YJ-02"], "--spool", str(tmp_path / "spool"),
                "--max-attempts", "3", "--max-backoff", "1"]
        # Without the CA the certificate is not trusted: nothing is sent, the logs stay spooled.
        untrusted = subprocess.run(base + ["--target", f"localhost:{port}", "--ca", "/dev/null", str(lines)],
                                   capture_output=True, text=True, timeout=60)
        assert untrusted.returncode == 1, untrusted.stderr
        done = subprocess.run(base + ["--target", f"localhost:{port}", "--ca", str(cert)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        stub = checkpoint_pb2_grpc.CheckpointServiceStub(kangyi.channel("checkpoint"))
        staff = [("x-kangyi-caller", "police-3"), ("x-kangyi-scopes", "checkpoint.read")]
        listed = stub.ListVehicleLogs(cpb.ListVehicleLogsRequest(plate="豫A70107"), metadata=staff, timeout=10)
        assert [(v.log.terminal_id, v.log.sequence, list(v.flags)) for v in listed.vehicle_logs] == [
            ("YJ-02", 107, [cpb.FLAG_FEVER, cpb.FLAG_YELLOW_CODE])]
        assert "rejected" not in done.stderr and "conflict" not in done.stderr, done.stderr


def test_the_c_terminal_hears_an_early_answer_while_it_still_has_a_backlog(kangyi, terminals, tmp_path):
    """A server may end an upload before reading all of it (here a gateway whose checkpoint is unreachable
    answers UNAVAILABLE at once). The terminal, with more to send than HTTP/2 lets it before the server reads,
    must take the answer as the end of the call and retry, not sit on a half-open stream until its idle timeout."""
    with own_gateway(kangyi, tmp_path, KANGYI_CHECKPOINT_ADDRESS=f"127.0.0.1:{free_port()}") as port:
        lines = logs_csv(tmp_path / "logs.csv", range(1, 5001), apart=datetime.timedelta(seconds=1))
        _, tokens, _ = terminals
        run = subprocess.run(
            [TERMINAL, "--terminal", "YJ-02", "--token", tokens["YJ-02"], "--spool", str(tmp_path / "spool"),
             "--target", f"127.0.0.1:{port}", "--max-attempts", "2", "--max-backoff", "1", "--idle-timeout", "20", str(lines)],
            capture_output=True, text=True, timeout=60)
        assert run.returncode != 0, run.stderr  # gave up: the logs stay spooled for the next run
        assert run.stderr.count("the server ended the upload: grpc-status 14") == 2, run.stderr
        assert "nothing from the server" not in run.stderr, run.stderr
