"""The tracing service from outside: an investigator's whole call through the gateway with grpcio (a
case, its contacts, the queue, a reached call, closing), personal data masked or unmasked by scope and
reason and every unmasked read in the access log, each caller kind against every method on the JSON
door, a checkpoint's flagged vehicle becoming a task, and the backend refusing unsigned identities."""
import datetime
import json

import grpc
import pytest
from google.protobuf import timestamp_pb2

from kangyi_testing import wait_for
from kangyi.checkpoint.v1 import checkpoint_pb2 as cpb, checkpoint_pb2_grpc
from kangyi.common.v1 import common_pb2
from kangyi.tracing.v1 import tracing_pb2 as tpb, tracing_pb2_grpc
from test_gateway import curl, gateway, new_token

SERVICE = "kangyi.tracing.v1.TracingService"
TODAY = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)).date()


def resident_id(prefix):
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return prefix + "10X98765432"[sum(int(d) * w for d, w in zip(prefix, weights)) % 11]


@pytest.fixture(scope="module")
def tracing(kangyi):
    stub = tracing_pb2_grpc.TracingServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    tokens = {kind: new_token(kangyi, "--kind", kind, "--caller", f"{kind}-1")
              for kind in ("investigator", "supervisor", "analyst", "citizen-frontend", "department-system", "staff-tool")}
    return stub, tokens


def auth(tokens, kind):
    return [("authorization", f"Bearer {tokens[kind]}")]


def test_an_investigators_call_from_case_to_close(tracing):
    stub, tokens = tracing
    me = auth(tokens, "investigator")
    created = stub.CreateCase(tpb.CreateCaseRequest(
        request_id="case-interop-1", classification=tpb.CLASSIFICATION_CONFIRMED, onset_date=str(TODAY),
        source="hospital report", index_person=tpb.PersonDetails(name="张三", phone="13800001111", district="410102")),
        metadata=me, timeout=10)
    assert created.case.classification == tpb.CLASSIFICATION_CONFIRMED and not created.replayed
    again = stub.CreateCase(tpb.CreateCaseRequest(
        request_id="case-interop-1", classification=tpb.CLASSIFICATION_CONFIRMED,
        index_person=tpb.PersonDetails(name="张三", phone="13800001111")), metadata=me, timeout=10)
    assert again.replayed and again.case.id == created.case.id

    household = tpb.Contact(person=tpb.PersonDetails(name="李四", phone="+86 138-0000-2222", address="中原区中山路1号",
                                                     id_number=resident_id("41010219850612003"), district="410102"),
                            relation=tpb.RELATION_HOUSEHOLD, last_exposure_date=str(TODAY))
    casual = tpb.Contact(person=tpb.PersonDetails(name="王五", phone="13800003333"), relation=tpb.RELATION_CASUAL,
                         last_exposure_date=str(TODAY - datetime.timedelta(days=2)))
    with pytest.raises(grpc.RpcError) as bad:
        bad_id = tpb.Contact(person=tpb.PersonDetails(name="赵六", id_number="410102198506120030"),
                             relation=tpb.RELATION_CLOSE, last_exposure_date=str(TODAY))
        stub.AddContacts(tpb.AddContactsRequest(case_id=created.case.id, contacts=[casual, bad_id]), metadata=me, timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contacts[1].person.id_number" in bad.value.details() and "410102198506120030" not in bad.value.details()

    added = stub.AddContacts(tpb.AddContactsRequest(case_id=created.case.id, contacts=[casual, household]), metadata=me, timeout=10)
    assert [c.created for c in added.contacts] == [True, True]

    # The household contact comes first; with a reason the investigator sees whom to call.
    claimed = stub.ClaimNextCall(tpb.ClaimNextCallRequest(reason="first call to a household contact"), metadata=me, timeout=10)
    assert claimed.task.id == added.contacts[1].task_id
    assert claimed.task.person.phone == "13800002222" and not claimed.task.person.masked
    attempt = stub.RecordCallAttempt(tpb.RecordCallAttemptRequest(
        task_id=claimed.task.id, request_id="call-interop-1", outcome=tpb.CALL_OUTCOME_REACHED,
        symptoms=[tpb.SYMPTOM_COUGH], temperature_decidegrees=375, quarantine=tpb.QUARANTINE_KIND_HOME,
        named_contacts=[tpb.Contact(person=tpb.PersonDetails(name="赵六", phone="13800004444"),
                                    relation=tpb.RELATION_CLOSE, last_exposure_date=str(TODAY))]),
        metadata=me, timeout=10)
    assert attempt.task.status == tpb.TASK_STATUS_FOLLOWING and attempt.task.symptomatic
    assert len(attempt.added_contacts) == 1

    # An analyst sees the figures; a person read without a reason is masked and leaves no trace.
    person = stub.GetPerson(tpb.GetPersonRequest(person_id=claimed.task.person.id), metadata=me, timeout=10)
    assert person.person.masked and person.person.phone == "138****2222" and person.person.name == "李*"
    found = stub.FindPerson(tpb.FindPersonRequest(id_number=household.person.id_number.lower(), reason="duplicate check"),
                            metadata=me, timeout=10)
    assert [p.id for p in found.persons] == [claimed.task.person.id]
    log = stub.ListAccessLog(tpb.ListAccessLogRequest(person_id=claimed.task.person.id), metadata=auth(tokens, "supervisor"), timeout=10)
    assert [e.method for e in log.entries] == ["FindPerson", "ClaimNextCall"]
    assert {e.reader.caller for e in log.entries} == {"investigator-1"}

    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1))
    end.FromDatetime(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    stats = stub.GetTracingStatistics(tpb.GetTracingStatisticsRequest(listed=common_pb2.TimeRange(start=start, end=end),
                                                                      district="410102"),
                                      metadata=auth(tokens, "analyst"), timeout=10)
    assert sum(d.contacts_listed for d in stats.days) >= 3 and sum(d.reached_within_24h for d in stats.days) >= 1

    closed = stub.CloseTask(tpb.CloseTaskRequest(task_id=claimed.task.id, request_id="close-interop-1",
                                                 reason=tpb.CLOSE_REASON_CONVERTED_TO_CASE,
                                                 classification=tpb.CLASSIFICATION_SUSPECTED), metadata=me, timeout=10)
    assert closed.task.status == tpb.TASK_STATUS_CLOSED and closed.case.index_person_id == claimed.task.person.id
    with pytest.raises(grpc.RpcError) as early:
        stub.CloseTask(tpb.CloseTaskRequest(task_id=added.contacts[0].task_id, request_id="close-interop-2",
                                            reason=tpb.CLOSE_REASON_QUARANTINE_COMPLETED), metadata=me, timeout=10)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_every_caller_kind_against_every_method(kangyi, tracing):
    _, tokens = tracing
    work = {"CreateCase", "AddContacts", "ClaimNextCall", "ReleaseCall", "RecordCallAttempt", "CloseTask", "GetTask",
            "GetPerson", "FindPerson", "ListTasks"}
    report = {"WatchOverdue", "GetTracingStatistics", "ListAccessLog"}
    allowed = {"investigator": work, "supervisor": work | report, "analyst": report,
               "citizen-frontend": set(), "department-system": set(), "staff-tool": set()}
    for kind, methods in allowed.items():
        for method in tpb.DESCRIPTOR.services_by_name["TracingService"].methods:
            status, _, body = curl(kangyi, f"{SERVICE}/{method.name}", {}, token=tokens[kind], max_time=3)
            if method.name in methods:
                assert status not in (401, 403, 500), f"{kind} {method.name}: {status} {body[:200]}"
            else:
                assert status == 403, f"{kind} {method.name}: {status} {body[:200]}"


def test_a_flagged_vehicle_becomes_a_task_to_call_its_driver(kangyi, tracing):
    stub, tokens = tracing
    checkpoint = checkpoint_pb2_grpc.CheckpointServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    operator = [("authorization", "Bearer " + new_token(kangyi, "--kind", "checkpoint-operator", "--caller", "op-t"))]
    checkpoint.RegisterTerminal(cpb.RegisterTerminalRequest(terminal_id="TR-01", checkpoint="ZZ-ZHONGMU"), metadata=operator, timeout=10)
    terminal = [("authorization", "Bearer " + new_token(kangyi, "--kind", "checkpoint-terminal", "--terminal", "TR-01"))]
    observed = timestamp_pb2.Timestamp()
    observed.FromDatetime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=3))
    checkpoint.RecordVehicleLog(cpb.RecordVehicleLogRequest(log=cpb.VehicleLog(
        terminal_id="TR-01", sequence=1, plate="豫A66666", plate_color=cpb.PLATE_COLOR_BLUE, vehicle_type=cpb.VEHICLE_TYPE_CAR,
        direction=cpb.DIRECTION_INBOUND, driver_phone="13800005555", destination_district="410105",
        occupants=[cpb.Occupant(temperature_decidegrees=390, health_code=cpb.HEALTH_CODE_GREEN)], observed_at=observed)),
        metadata=terminal, timeout=10)

    def task():
        listed = stub.ListTasks(tpb.ListTasksRequest(district="410105"), metadata=auth(tokens, "investigator"), timeout=10)
        return next((t for t in listed.tasks if t.checkpoint.terminal_id == "TR-01"), None)
    found = wait_for(task, seconds=20, what="a tracing task for the flagged driver")
    assert found.source == tpb.TASK_SOURCE_CHECKPOINT and list(found.checkpoint.flags) == ["fever"]
    assert found.person.phone == "138****5555"
    assert found.checkpoint.plate == "豫A66666" and found.checkpoint.checkpoint == "ZZ-ZHONGMU"


def test_the_backend_believes_only_signed_identities(kangyi):
    claims = [("x-kangyi-caller", "investigator-9"), ("x-kangyi-scopes", "pii.read")]
    raw = tracing_pb2_grpc.TracingServiceStub(kangyi.raw_channel("tracing"))
    with pytest.raises(grpc.RpcError) as refused:
        raw.FindPerson(tpb.FindPersonRequest(phone="13800001111", reason="forged"), metadata=claims, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    signed = tracing_pb2_grpc.TracingServiceStub(kangyi.channel("tracing"))
    found = signed.FindPerson(tpb.FindPersonRequest(phone="13800001111", reason="index case check"), metadata=claims, timeout=10)
    assert [p.phone for p in found.persons] == ["13800001111"]
