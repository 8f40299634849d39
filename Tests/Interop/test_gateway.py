"""The gateway from outside: Python grpcio over HTTP/2 and curl over HTTP/1.1 (JSON), against the
gateway that `kangyi dev` runs in front of intake and verification."""
import json
import os
import subprocess
import time
import uuid

import grpc
import pytest

from kangyi_testing import KANGYI
from kangyi.intake.v1 import intake_pb2 as ipb, intake_pb2_grpc
from kangyi.verification.v1 import verification_pb2 as vpb, verification_pb2_grpc

INTAKE = "kangyi.intake.v1.IntakeService"


def gateway(kangyi):
    return next(s for s in kangyi.info["services"] if s["name"] == "gateway")


def new_token(kangyi, *args):
    """A token made with `kangyi token create` on the dev database."""
    env = dict(os.environ, KANGYI_DATABASE_URL=kangyi.info["database_url"])
    out = subprocess.run(
        [KANGYI, "token", "create", "--json", *args],
        env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["token"]


def curl(kangyi, method, body, token=None, max_time=10, headers=()):
    """POST /<service>/<method> with curl; returns (HTTP status, headers text, body text)."""
    url = f"http://{gateway(kangyi)['http']}/{method}"
    command = ["curl", "-s", "-S", "-i", "--max-time", str(max_time), "-X", "POST", url, "-d", json.dumps(body)]
    if token:
        command += ["-H", f"authorization: Bearer {token}"]
    for header in headers:
        command += ["-H", header]
    result = subprocess.run(command, capture_output=True, text=True)
    head, _, text = result.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split("\n")[0].split()[1]) if head else 0
    return status, head, text


def submission(phone):
    return {
        "requestId": f"gw-{uuid.uuid4()}", "category": "medical", "district": "410102",
        "contact": {"phone": phone, "name": "赵六"}, "description": f"需要退烧药 {uuid.uuid4()}", "urgency": "URGENCY_CRITICAL",
    }


def grpc_submission(phone):
    return ipb.SubmitHelpRequestRequest(
        request_id=f"gw-{uuid.uuid4()}", category="food_supply", district="410102",
        contact=ipb.Contact(phone=phone), description=f"没有菜了 {uuid.uuid4()}", urgency=ipb.URGENCY_URGENT)


def test_grpc_through_the_gateway(kangyi):
    channel = grpc.insecure_channel(gateway(kangyi)["grpc"])
    intake = intake_pb2_grpc.IntakeServiceStub(channel)
    dev = [("authorization", f"Bearer {kangyi.info['token']}")]
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    request = grpc_submission(phone)
    submitted, call = intake.SubmitHelpRequest.with_call(request, metadata=dev, timeout=10)
    assert submitted.help_request.ticket.startswith("KY")
    assert dict(call.initial_metadata()).get("x-request-id")

    with pytest.raises(grpc.RpcError) as missing:
        intake.ListCategories(ipb.ListCategoriesRequest(), timeout=5)
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Two tokens, even one of them good: which speaks for the call is not the gateway's to guess.
    for two in (dev + [("authorization", "Bearer kyt_someone_else")], [("authorization", "Bearer kyt_someone_else")] + dev):
        with pytest.raises(grpc.RpcError) as ambiguous:
            intake.ListCategories(ipb.ListCategoriesRequest(), metadata=two, timeout=5)
        assert ambiguous.value.code() == grpc.StatusCode.UNAUTHENTICATED and "one `authorization`" in ambiguous.value.details()

    # A department's token, with forged identity headers: the backend sees the token's identity, so
    # the forged pii.read scope does not unmask the phone.
    department = [("authorization", f"Bearer {new_token(kangyi, '--caller', 'dept-x', '--kind', 'department-system')}")]
    forged = department + [("x-kangyi-scopes", "pii.read"), ("x-kangyi-caller", "developer")]
    got = intake.GetHelpRequest(ipb.GetHelpRequestRequest(id=submitted.help_request.id), metadata=forged, timeout=5)
    assert got.help_request.contact.phone != phone and "*" in got.help_request.contact.phone
    # ... and a staff method is outside its scopes.
    verification = verification_pb2_grpc.VerificationServiceStub(channel)
    with pytest.raises(grpc.RpcError) as denied:
        verification.ClaimNext(vpb.ClaimNextRequest(), metadata=department, timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # Server streaming through the gateway.
    stream = intake.WatchHelpRequests(ipb.WatchHelpRequestsRequest(), metadata=dev, timeout=5)
    first = next(stream)
    assert first.help_request.id and first.cursor
    stream.cancel()

    # One access-log line per call, attributed to the token's holder.
    lines = [l for l in kangyi.log_lines() if l.get("msg") == "rpc" and l.get("method") == f"{INTAKE}/GetHelpRequest"]
    assert any(l["caller"] == "dept-x" and l["code"] == "ok" for l in lines)


def test_json_over_http(kangyi):
    token = kangyi.info["token"]
    phone = f"138{uuid.uuid4().int % 10**8:08d}"
    status, head, body = curl(kangyi, f"{INTAKE}/SubmitHelpRequest", submission(phone), token)
    assert status == 200, body
    assert "application/json" in head.lower() and "x-request-id" in head.lower()
    created = json.loads(body)["helpRequest"]
    assert created["ticket"].startswith("KY") and created["status"] == "HELP_REQUEST_STATUS_SUBMITTED"

    status, _, body = curl(kangyi, f"{INTAKE}/LookupHelpRequest", {"ticket": created["ticket"], "phone": phone}, token)
    assert status == 200 and json.loads(body)["helpRequest"]["id"] == created["id"]

    # Invalid input: 400 with the gRPC status and its details.
    status, _, body = curl(kangyi, f"{INTAKE}/SubmitHelpRequest", {"requestId": "x", "category": "medical"}, token)
    error = json.loads(body)["error"]
    assert status == 400 and error["status"] == "INVALID_ARGUMENT" and error["code"] == 3
    fields = {v["field"] for d in error["details"] if d["@type"].endswith("BadRequest") for v in d["fieldViolations"]}
    assert {"district", "contact.phone", "description"} <= fields

    # Not JSON of that message: 400 naming the body and what is wrong with it, without echoing it (a key
    # may be personal data). Unknown ticket: 404. No token: 401. Unknown method: 501.
    for wrong, said in [({phone: 1}, "a field the message does not have"),
                        ({"urgency": "URGENCY_WHENEVER"}, "an enum value the contract does not have"),
                        ({"location": {"latitude": "north"}}, "a malformed number"),
                        ({"description": None, "specialGroups": [None]}, "null where a value is required")]:
        status, _, body = curl(kangyi, f"{INTAKE}/SubmitHelpRequest", wrong, token)
        error = json.loads(body)["error"]
        assert status == 400 and error["status"] == "INVALID_ARGUMENT" and said in error["message"], body
        assert error["message"].startswith("body: ") and phone not in body and "WHENEVER" not in body
    assert curl(kangyi, f"{INTAKE}/LookupHelpRequest", {"ticket": "KY0", "phone": phone}, token)[0] == 404
    status, _, body = curl(kangyi, f"{INTAKE}/ListCategories", {})
    assert status == 401 and json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
    assert curl(kangyi, f"{INTAKE}/NoSuchMethod", {}, token)[0] == 501
    status, _, body = curl(kangyi, f"{INTAKE}/ListCategories", {}, token, headers=["authorization: Bearer kyt_someone_else"])
    assert status == 401 and "AMBIGUOUS_TOKEN" in body
    # Another HTTP method on a call's path: 405, naming POST.
    got = subprocess.run(["curl", "-s", "-i", "--max-time", "5", f"http://{gateway(kangyi)['http']}/{INTAKE}/ListCategories"],
                         capture_output=True, text=True).stdout.replace("\r\n", "\n")
    assert got.split()[1] == "405" and "\nallow: post\n" in got.lower(), got[:300]

    # Server streaming as newline-delimited JSON (the watch never ends by itself: curl stops it).
    status, head, body = curl(kangyi, f"{INTAKE}/WatchHelpRequests", {}, token, max_time=2)
    assert status == 200 and "application/x-ndjson" in head
    lines = [json.loads(line) for line in body.strip().split("\n") if line]
    assert lines and all("helpRequest" in line and "cursor" in line for line in lines)


def test_json_watchers_who_leave_cost_no_other_watch(kangyi):
    """250 JSON watches whose callers have gone (their sockets reset), woken together by one new help
    request: the gateway cancels each call to intake, and intake's HTTP/2 ends a connection whose peer
    resets more than 200 streams in 30 s. No client of the gateway carries more than 100 calls, so the
    watch of the one caller who stayed is not lost with them: it sees that request and the next."""
    import http.client
    import socket
    host, port = gateway(kangyi)["http"].rsplit(":", 1)
    token = new_token(kangyi, "--kind", "department-system", "--caller", "json-leavers", "--rate", "10000", "--burst", "10000")
    retired_before = metric(kangyi, "kangyi_gateway_backend_connections_retired_total", reason="resets")

    def watch():
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", f"/{INTAKE}/WatchHelpRequests", body="{}",
                           headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        return connection, response

    def submitted():
        status, _, body = curl(kangyi, f"{INTAKE}/SubmitHelpRequest", submission(f"137{uuid.uuid4().int % 10**8:08d}"), token)
        assert status == 200, body
        return json.loads(body)["helpRequest"]["id"]

    def seen_by(response, request_id):
        lines = b""
        while request_id.encode() not in lines:
            line = response.fp.readline()
            assert line and b'"error"' not in line, f"the watch ended: {(lines + line)[-300:]!r}"
            lines += line

    submitted()  # a watch then starts with a line at once
    witness, watching = watch()
    try:
        watching.fp.readline()
        for _ in range(250):
            connection, response = watch()
            response.fp.readline()  # its call to intake is open
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            connection.sock.close()  # reset: the caller is gone
        seen_by(watching, submitted())  # wakes every watch: 250 writes fail, 250 calls cancelled
        time.sleep(1)
        seen_by(watching, submitted())
    finally:
        witness.close()
    assert metric(kangyi, "kangyi_gateway_backend_connections_retired_total", reason="resets") > retired_before, \
        "a client whose callers cancelled 100 calls was replaced"


def test_grpc_watchers_who_leave_cost_no_other_watch(kangyi):
    """250 gRPC watches through the door, cancelled together (a front end's connections lost at once):
    the door passes each cancellation on to intake, whose HTTP/2 ends a connection whose peer resets more
    than 200 streams in 30 s. No connection of the door carries more than 100 calls, so the watch of
    the one caller who stayed is not lost with them."""
    token = new_token(kangyi, "--kind", "department-system", "--caller", "grpc-leavers", "--rate", "10000", "--burst", "10000")
    metadata = [("authorization", f"Bearer {token}")]
    address = gateway(kangyi)["grpc"]
    # Each channel its own connection (grpcio shares them otherwise), 50 cancels on each: the door's own
    # guard ends a caller's connection after 200 resets, as the backend's does.
    own = [("grpc.use_local_subchannel_pool", 1)]
    intake = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(address, options=own))

    def submitted():
        return intake.SubmitHelpRequest(grpc_submission(f"136{uuid.uuid4().int % 10**8:08d}"), metadata=metadata, timeout=10).help_request.id

    submitted()  # a watch then starts with a message at once
    witness = intake.WatchHelpRequests(ipb.WatchHelpRequestsRequest(), metadata=metadata, timeout=60)
    next(witness)
    channels = [grpc.insecure_channel(address, options=own) for _ in range(5)]
    leavers = []
    for n in range(250):
        watch = intake_pb2_grpc.IntakeServiceStub(channels[n % 5]).WatchHelpRequests(
            ipb.WatchHelpRequestsRequest(), metadata=metadata, timeout=60)
        next(watch)  # its call to intake is open
        leavers.append(watch)
    for watch in leavers:
        watch.cancel()
    for channel in channels:
        channel.close()
    for _ in range(2):
        wanted = submitted()
        assert any(event.help_request.id == wanted for event in witness), "the witness's watch ended"
        time.sleep(1)
    witness.cancel()


def test_rate_limit_over_http(kangyi):
    token = new_token(kangyi, "--caller", "slowpoke", "--kind", "citizen-frontend", "--rate", "0.01", "--burst", "1")
    assert curl(kangyi, f"{INTAKE}/ListCategories", {}, token)[0] == 200
    status, head, body = curl(kangyi, f"{INTAKE}/ListCategories", {}, token)
    assert status == 429 and "retry-after:" in head.lower()
    details = json.loads(body)["error"]["details"]
    assert any(d["@type"].endswith("RetryInfo") for d in details)


def test_per_caller_metrics(kangyi):
    curl(kangyi, f"{INTAKE}/ListCategories", {}, kangyi.info["token"])
    import urllib.request
    with urllib.request.urlopen(f"http://{kangyi.info['metrics']}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert f'kangyi_rpc_total{{method="{INTAKE}/ListCategories",code="ok",caller="developer"}}' in text


def gateway_calls(kangyi, path):
    """`kangyi_gateway_calls_total{path=...}` from the dev process's metrics."""
    return metric(kangyi, "kangyi_gateway_calls_total", path=path)


def metric(kangyi, name, **labels):
    """The sum of `name`'s samples carrying `labels`, from the dev process's metrics (0 if none)."""
    import urllib.request
    with urllib.request.urlopen(f"http://{kangyi.info['metrics']}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines
               if line.startswith(name + "{") and all(f'{k}="{v}"' in line.split("}")[0] for k, v in labels.items()))


def test_an_admitted_call_goes_straight_to_its_backend_under_the_same_rules(kangyi):
    """A call with a live token in scope skips the gateway's own gRPC server: its frames go to the backend
    with the headers rewritten. Everything the forwarded path guarantees holds there too."""
    channel = grpc.insecure_channel(gateway(kangyi)["grpc"])
    intake = intake_pb2_grpc.IntakeServiceStub(channel)
    dev = [("authorization", f"Bearer {kangyi.info['token']}")]
    phone = f"137{uuid.uuid4().int % 10**8:08d}"
    request = grpc_submission(phone)
    created = intake.SubmitHelpRequest(request, metadata=dev, timeout=10).help_request
    department = [("authorization", f"Bearer {new_token(kangyi, '--caller', 'dept-direct', '--kind', 'department-system')}")]
    intake.ListCategories(ipb.ListCategoriesRequest(), metadata=department, timeout=5)

    before = gateway_calls(kangyi, "direct")
    # Forged identity headers are dropped and the token's identity signed in its place: no unmasked phone.
    forged = department + [("x-kangyi-scopes", "pii.read"), ("x-kangyi-caller", "developer"), ("x-request-id", "direct-1")]
    got, call = intake.GetHelpRequest.with_call(ipb.GetHelpRequestRequest(id=created.id), metadata=forged, timeout=5)
    assert got.help_request.contact.phone != phone and "*" in got.help_request.contact.phone
    assert dict(call.initial_metadata()).get("x-request-id") == "direct-1"
    # A retried submission is answered with the first one's request, not a second.
    again = intake.SubmitHelpRequest(request, metadata=dev, timeout=10).help_request
    assert again.id == created.id
    # A refusal of the backend comes back whole: its code, message and details.
    with pytest.raises(grpc.RpcError) as invalid:
        intake.SubmitHelpRequest(ipb.SubmitHelpRequestRequest(request_id="x"), metadata=dev, timeout=5)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "district" in invalid.value.details()
    assert any(key == "grpc-status-details-bin" for key, _ in invalid.value.trailing_metadata())
    with pytest.raises(grpc.RpcError) as missing:
        intake.GetHelpRequest(ipb.GetHelpRequestRequest(id=str(uuid.uuid4())), metadata=department, timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # Server streaming, ended by the caller.
    stream = intake.WatchHelpRequests(ipb.WatchHelpRequestsRequest(), metadata=dev, timeout=5)
    assert next(stream).help_request.id
    stream.cancel()
    # The caller's deadline is the backend's.
    with pytest.raises(grpc.RpcError) as late:
        list(intake.WatchHelpRequests(ipb.WatchHelpRequestsRequest(), metadata=dev, timeout=0.5))
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Outside the token's scopes: refused, as before (by the gateway's server, which the call is handed to).
    with pytest.raises(grpc.RpcError) as denied:
        verification_pb2_grpc.VerificationServiceStub(channel).ClaimNext(vpb.ClaimNextRequest(), metadata=department, timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert gateway_calls(kangyi, "direct") >= before + 6

    # Logged as the forwarded calls are, attributed to the token's holder: one line by the gateway, one by
    # intake (both in this `kangyi dev` process's log).
    lines = [l for l in kangyi.log_lines() if l.get("msg") == "rpc" and l.get("request_id") == "direct-1"]
    assert [(l["caller"], l["code"], l["method"]) for l in lines] == [("dept-direct", "ok", f"{INTAKE}/GetHelpRequest")] * 2


def test_the_grpc_door_serves_tls_when_a_certificate_is_configured(tmp_path):
    from kangyi_testing import Served, fresh_database, free_port
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    env = dict(os.environ, KANGYI_DATABASE_URL=fresh_database("tls"), KANGYI_TLS_CERT=str(cert), KANGYI_TLS_KEY=str(key),
               KANGYI_HTTP_PORT="0", KANGYI_INTAKE_ADDRESS=f"127.0.0.1:{free_port()}")
    port = free_port()
    server = Served("gateway", env, tmp_path / "gateway.log", port=port, tls_root=cert.read_bytes())
    server.start()
    try:
        secure = grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(root_certificates=cert.read_bytes()))
        with pytest.raises(grpc.RpcError) as refused:
            intake_pb2_grpc.IntakeServiceStub(secure).ListCategories(ipb.ListCategoriesRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # the gateway answered over TLS
        with pytest.raises(grpc.RpcError) as plaintext:
            intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}")).ListCategories(
                ipb.ListCategoriesRequest(), timeout=3)
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()


def test_a_burst_beyond_the_gateways_connections_waits_for_room_and_is_not_refused(tmp_path):
    """300 calls at once at a fresh gateway: its front door carries 100 calls on a connection to intake and
    makes another when all are full; the calls beyond them wait the milliseconds that takes. Before, they
    went the gateway's own server's way, whose connections were as full, and 99 of 300 were refused
    UNAVAILABLE ("the gateway is not ready")."""
    from kangyi_testing import Kangyi
    fresh = Kangyi(tmp_path, label="burst")
    try:
        token = [("authorization", f"Bearer {fresh.info['token']}")]
        channels = [grpc.insecure_channel(gateway(fresh)["grpc"], options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(4)]
        stubs = [intake_pb2_grpc.IntakeServiceStub(channel) for channel in channels]
        stubs[0].ListCategories(ipb.ListCategoriesRequest(), metadata=token, timeout=10)  # the token known
        calls = [stubs[i % 4].ListCategories.future(ipb.ListCategoriesRequest(), metadata=token, timeout=20)
                 for i in range(300)]
        codes = {}
        for call in calls:
            answer = f"{call.code().name} {call.details() or ''}".strip()
            codes[answer] = codes.get(answer, 0) + 1
        assert codes == {"OK": 300}, codes
    finally:
        fresh.stop()


def test_the_json_door_closes_silent_connections_but_never_a_call_being_answered(tmp_path):
    """A caller who sends half a request line, or keeps a connection open and silent, loses it after
    KANGYI_KEEPALIVE_S + KANGYI_KEEPALIVE_TIMEOUT_S (here 1 + 1 s), as a silent gRPC connection does. Before,
    such a connection was held forever: 4,500 of them, half-written, were all still open after 70 s, each a
    file descriptor of the gateway's 20,000. The metrics port does the same. A watch streaming its answer for
    longer is not cut."""
    import socket
    from kangyi_testing import Kangyi
    fresh = Kangyi(tmp_path, label="silent", KANGYI_KEEPALIVE_S="1", KANGYI_KEEPALIVE_TIMEOUT_S="1")
    try:
        def closed_after(first_bytes, address=gateway(fresh)["http"]):
            host, port = address.rsplit(":", 1)
            connection = socket.create_connection((host, int(port)))
            connection.settimeout(15)
            started = time.monotonic()
            connection.sendall(first_bytes)
            try:
                while connection.recv(4096):  # an answer, if the request was whole; then the close
                    pass
            except ConnectionResetError:
                pass
            return time.monotonic() - started

        half_a_request = closed_after(b"POST /kangyi.intake.v1.IntakeService/ListCategories HTTP/1.1\r\nHo")
        answered_then_silent = closed_after(
            b"POST /kangyi.intake.v1.IntakeService/ListCategories HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert 1.5 < half_a_request < 10 and 1.5 < answered_then_silent < 10, (half_a_request, answered_then_silent)
        metrics_port = closed_after(b"GET /metr", address=fresh.info["metrics"])  # every process's, alike
        assert 1.5 < metrics_port < 10, metrics_port

        # curl gives up after 5 s (exit 28), having had the watch's lines all along: the door did not cut it.
        watch = subprocess.run(
            ["curl", "-s", "-N", "--max-time", "5", "-X", "POST", f"http://{gateway(fresh)['http']}/{INTAKE}/WatchHelpRequests",
             "-H", f"authorization: Bearer {fresh.info['token']}", "-d", "{}"], capture_output=True, text=True)
        assert watch.returncode == 28, (watch.returncode, watch.stdout[-300:])
    finally:
        fresh.stop()


def test_streams_end_when_their_token_is_revoked(kangyi):
    """A token is checked when a call starts; a watch may run for hours after. Revoked, the token stops
    speaking for the streams it opened too — relayed straight to the backend by the front door, and as JSON —
    within the revocation sweep's 10 s (and a second's slack for each path). Before, all three ran on. A
    stream opened with another token runs on. (The gateway's own server, which a stream takes when its token
    is not cached yet, is tried in `RevocationTests`.)"""
    import threading
    env = dict(os.environ, KANGYI_DATABASE_URL=kangyi.info["database_url"])
    made = json.loads(subprocess.run(
        [KANGYI, "token", "create", "--json", "--caller", "revoked-analyst", "--kind", "staff-tool"],
        env=env, check=True, capture_output=True, text=True).stdout)
    doomed = [("authorization", f"Bearer {made['token']}")]
    live = [("authorization", f"Bearer {kangyi.info['token']}")]
    channel = grpc.insecure_channel(gateway(kangyi)["grpc"])
    stub = intake_pb2_grpc.IntakeServiceStub(channel)
    ended = {}

    def watch(name, metadata, **options):
        try:
            for _ in stub.WatchHelpRequests(ipb.WatchHelpRequestsRequest(), metadata=metadata, timeout=40, **options):
                pass
            ended[name] = ("OK", time.monotonic())
        except grpc.RpcError as error:
            ended[name] = (error.code().name, time.monotonic())

    def watch_json():
        status, _, body = curl(kangyi, f"{INTAKE}/WatchHelpRequests", {}, made["token"], max_time=40)
        last = json.loads(body.strip().split("\n")[-1])
        ended["json"] = (last.get("error", {}).get("status", f"HTTP {status}"), time.monotonic())

    streams = [threading.Thread(target=watch, args=("relayed", doomed), daemon=True),
               threading.Thread(target=watch_json, daemon=True),
               threading.Thread(target=watch, args=("another token", live), daemon=True)]
    for stream in streams:
        stream.start()
    time.sleep(2)
    assert not ended, ended  # all four streaming
    subprocess.run([KANGYI, "token", "revoke", made["id"]], env=env, check=True, capture_output=True)
    revoked = time.monotonic()
    for stream in streams[:2]:
        stream.join(timeout=25)
    took = {name: round(at - revoked, 1) for name, (_, at) in ended.items()}
    assert {name: code for name, (code, _) in ended.items()} == {"relayed": "UNAUTHENTICATED", "json": "UNAUTHENTICATED"}, (ended, took)
    assert all(seconds <= 12 for seconds in took.values()), took
    assert streams[2].is_alive()  # the live token's watch runs on
    channel.close()  # which ends it
    streams[2].join(timeout=10)


def test_sigterm_ends_the_streams_through_the_gateway_at_once(tmp_path):
    """A watch relayed to a backend that is not shutting down never ends by itself: it held the gateway's
    drain to its last second (20 s, then exit 1), where its caller could have gone to another replica at
    once. At SIGTERM every stream through the gateway, gRPC or JSON, is now told UNAVAILABLE
    GATEWAY_SHUTTING_DOWN, and the process exits 0 within seconds."""
    import signal
    import threading
    from kangyi_testing import Kangyi
    fresh = Kangyi(tmp_path, label="drain")
    try:
        stub = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(gateway(fresh)["grpc"]))
        token = fresh.info["token"]
        ended = {}

        def watch():
            try:
                for _ in stub.WatchHelpRequests(ipb.WatchHelpRequestsRequest(), metadata=[("authorization", f"Bearer {token}")],
                                                timeout=60):
                    pass
                ended["grpc"] = "OK"
            except grpc.RpcError as error:
                ended["grpc"] = f"{error.code().name} {error.details()}"

        def watch_json():
            _, _, body = curl(fresh, f"{INTAKE}/WatchHelpRequests", {}, token, max_time=60)
            ended["json"] = json.loads(body.strip().split("\n")[-1]).get("error", {}).get("status", "no error line")

        streams = [threading.Thread(target=watch, daemon=True), threading.Thread(target=watch_json, daemon=True)]
        for stream in streams:
            stream.start()
        time.sleep(2)
        started = time.monotonic()
        fresh.process.send_signal(signal.SIGTERM)
        code = fresh.process.wait(timeout=30)
        took = time.monotonic() - started
        for stream in streams:
            stream.join(timeout=10)
        assert code == 0 and took < 5, (code, took)
        assert ended["grpc"].startswith("UNAVAILABLE the gateway is shutting down") and ended["json"] == "UNAVAILABLE", ended
    finally:
        if fresh.process.poll() is None:
            fresh.stop()
