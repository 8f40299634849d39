"""Intake from Python grpcio: submit, look up, list, watch — over HTTP/2 against `kangyi dev`."""
import json
import os
import subprocess
import threading
import uuid

import grpc
import pytest

from kangyi.intake.v1 import intake_pb2 as pb, intake_pb2_grpc
from kangyi_testing import ROOT, help_request, psql

PII = [("x-kangyi-caller", "interop"), ("x-kangyi-scopes", "pii.read")]


@pytest.fixture()
def intake(kangyi):
    return intake_pb2_grpc.IntakeServiceStub(kangyi.channel())


def test_submit_lookup_and_retry(intake, kangyi):
    request_id = f"py-{uuid.uuid4()}"
    phone = f"+86 139-{uuid.uuid4().int % 10**8:08d}"
    first = intake.SubmitHelpRequest(help_request(request_id, phone), metadata=PII, timeout=10).help_request
    assert first.ticket.startswith("KY") and first.status == pb.HELP_REQUEST_STATUS_SUBMITTED
    assert first.green_channel and first.priority == 60 + 20

    again = intake.SubmitHelpRequest(help_request(request_id, phone), metadata=PII, timeout=10)
    assert again.replayed and again.help_request.id == first.id

    found = intake.LookupHelpRequest(pb.LookupHelpRequestRequest(ticket=first.ticket, phone=phone), timeout=5)
    assert found.help_request.id == first.id
    assert found.help_request.contact.phone.count("*") == 4  # no pii.read: masked

    with pytest.raises(grpc.RpcError) as wrong:
        intake.LookupHelpRequest(pb.LookupHelpRequestRequest(ticket=first.ticket, phone="13000000000"), timeout=5)
    assert wrong.value.code() == grpc.StatusCode.NOT_FOUND

    # Personal data never reaches the log: not the phone in any form, not the name.
    digits = "".join(c for c in phone if c.isdigit())[-11:]
    log = kangyi.log()
    assert digits not in log and "李四" not in log
    assert any(line.get("method") == "kangyi.intake.v1.IntakeService/SubmitHelpRequest" for line in kangyi.log_lines())


def test_invalid_input_names_the_field(intake):
    bad = help_request(f"py-{uuid.uuid4()}", phone="12345")
    with pytest.raises(grpc.RpcError) as error:
        intake.SubmitHelpRequest(bad, timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contact.phone" in error.value.details()
    trailers = dict(error.value.trailing_metadata())
    assert "grpc-status-details-bin" in trailers  # google.rpc.Status with BadRequest


def test_list_pages_and_watch_streams_new_requests(intake):
    tag = uuid.uuid4().hex[:8]
    watch = intake.WatchHelpRequests(pb.WatchHelpRequestsRequest(), timeout=30)
    seen = []
    done = threading.Event()

    def follow():
        for message in watch:
            if tag in message.help_request.description:
                seen.append(message)
                if len(seen) == 3:
                    done.set()
                    return

    threading.Thread(target=follow, daemon=True).start()
    for index in range(3):
        intake.SubmitHelpRequest(
            help_request(f"py-{tag}-{index}", phone=f"1350000{uuid.uuid4().int % 10**4:04d}", text=f"{tag} 第{index}次"),
            timeout=10)
    assert done.wait(20), f"watch saw {len(seen)} of 3"
    watch.cancel()
    assert all(m.cursor for m in seen)

    pages, token = [], ""
    while True:
        page = intake.ListHelpRequests(pb.ListHelpRequestsRequest(category="medical", page_size=2, page_token=token), timeout=5)
        pages.append(page)
        token = page.next_page_token
        if not token:
            break
    ids = [r.id for p in pages for r in p.help_requests]
    assert len(ids) == len(set(ids)) and len(ids) >= 3


def test_the_benchs_c_load_generator_counts_only_what_was_stored(kangyi, tmp_path):
    """kangyi-load, `make bench`'s generator, closed and open loop: its submissions are new rows (no replays, no
    repeats), and every call it counts as acknowledged is one."""
    generator = os.environ.get("KANGYI_LOAD_BIN", str(ROOT / ".build/debug/kangyi-load"))
    for block, load in ((698, ["--concurrency", "4"]), (699, ["--rate", "100"])):  # closed loop, open loop
        report_path = tmp_path / f"load-{block}.json"
        subprocess.run([generator, "--target", kangyi.addresses["intake"], *load, "--seconds", "1",
                        "--phone-block", str(block), "--json", str(report_path)], check=True, timeout=30)
        report = json.loads(report_path.read_text())
        assert report["ok"] > 0 and set(report["codes"]) == {"ok"} and report["p50_ms"] > 0
        rows, repeats = psql(kangyi.database_url, "SELECT count(*), count(repeat_of) FROM intake.help_requests "
                             f"WHERE request_id LIKE 'bench-{report['run']}-%'").stdout.strip().split("|")
        assert report["ok"] <= int(rows) <= report["calls"] and int(repeats) == 0
    assert report["mode"] == "open" and 250 <= report["calls"] <= 310  # 3 s at 100 a second
