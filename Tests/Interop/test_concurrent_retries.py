"""Concurrent retries: the same write sent eight times at once — a client retrying on a timeout while its
first try is still in flight, or the same form sent from two devices — is done once, for every service that
writes (through the gateway; verification's agents straight to it, as peers sign). Every answer names the one
stored thing, exactly one answer is not a replay, and the table holds one row."""
import threading
import uuid

import grpc

from kangyi.common.v1 import common_pb2
from kangyi.intake.v1 import intake_pb2 as ipb, intake_pb2_grpc
from kangyi.pricewatch.v1 import pricewatch_pb2 as ppb, pricewatch_pb2_grpc
from kangyi_testing import help_request, psql, wait_for
from test_gateway import gateway, new_token
from test_pricewatch import obs, stamp

AT_ONCE = 8


def at_once(call):
    """`call()` from AT_ONCE threads released together; their answers (or errors), in no particular order."""
    start, answers, lock = threading.Barrier(AT_ONCE), [], threading.Lock()

    def one():
        start.wait()
        try:
            answer = call()
        except grpc.RpcError as error:
            answer = error
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(AT_ONCE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    errors = [a for a in answers if isinstance(a, grpc.RpcError)]
    assert not errors, [(e.code(), e.details()) for e in errors]
    assert len(answers) == AT_ONCE
    return answers


def rows(kangyi, table, where):
    out = psql(kangyi.database_url, f"SELECT count(*) FROM {table} WHERE {where}")
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def bearer(kangyi, kind, caller):
    return [("authorization", "Bearer " + new_token(kangyi, "--kind", kind, "--caller", caller))]


def test_a_help_request_and_a_suggestion_sent_at_once_are_stored_once(kangyi):
    stub = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    citizen = bearer(kangyi, "citizen-frontend", "web-retries")
    request = help_request(f"retry-{uuid.uuid4()}", f"139{uuid.uuid4().int % 10**8:08d}")
    answers = at_once(lambda: stub.SubmitHelpRequest(request, metadata=citizen, timeout=15))
    assert len({a.help_request.id for a in answers}) == 1
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)
    assert rows(kangyi, "intake.help_requests", f"request_id = '{request.request_id}'") == 1

    suggestion = ipb.SubmitSuggestionRequest(request_id=f"retry-{uuid.uuid4()}", text="请在社区门口设置消毒点")
    answers = at_once(lambda: stub.SubmitSuggestion(suggestion, metadata=citizen, timeout=15))
    assert len({a.id for a in answers}) == 1
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)
    assert rows(kangyi, "intake.suggestions", f"request_id = '{suggestion.request_id}'") == 1


def test_a_price_control_and_an_observation_sent_at_once_are_stored_once(kangyi):
    stub = pricewatch_pb2_grpc.PriceWatchServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    supervisor = bearer(kangyi, "market-supervisor", "sup-retries")
    stub.SetOutlet(ppb.SetOutletRequest(outlet=ppb.Outlet(code="PW-RETRY", name="重试药房", kind=ppb.OUTLET_KIND_PHARMACY,
                                                          district="410102", licence_number="91410100RETRY")),
                   metadata=supervisor, timeout=10)
    control = ppb.SetPriceControlRequest(request_id=f"retry-{uuid.uuid4()}", control=ppb.PriceControl(
        kind=ppb.CONTROL_KIND_CEILING, commodity="thermometer_ir", ceiling_fen=3000, effective=common_pb2.TimeRange(start=stamp(60))))
    answers = at_once(lambda: stub.SetPriceControl(control, metadata=supervisor, timeout=15))
    assert len({a.control.id for a in answers}) == 1
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)

    reporter = bearer(kangyi, "price-reporter", "rep-retries")
    observation = obs(f"retry-{uuid.uuid4()}", 2500, outlet="PW-RETRY", commodity="thermometer_ir")
    answers = at_once(lambda: stub.SubmitPriceObservations(
        ppb.SubmitPriceObservationsRequest(observations=[observation]), metadata=reporter, timeout=15))
    assert sorted((a.stored, a.duplicates) for a in answers) == [(0, 1)] * (AT_ONCE - 1) + [(1, 0)]
    assert rows(kangyi, "pricewatch.observations", f"observation_id = '{observation.observation_id}'") == 1


def test_a_case_its_contacts_a_call_and_a_closing_sent_at_once_are_done_once(kangyi):
    """Tracing's writes, each sent eight times at once: one case, one person and one task per contact (the
    same person named by eight tries of the list), one call attempt, one closing."""
    from kangyi.tracing.v1 import tracing_pb2 as tpb, tracing_pb2_grpc
    from test_tracing import TODAY, resident_id
    stub = tracing_pb2_grpc.TracingServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    me = bearer(kangyi, "investigator", "inv-retries")
    tag = uuid.uuid4().int
    case = tpb.CreateCaseRequest(
        request_id=f"retry-{uuid.uuid4()}", classification=tpb.CLASSIFICATION_CONFIRMED, onset_date=str(TODAY),
        index_person=tpb.PersonDetails(name="钱七", phone=f"137{tag % 10**8:08d}", district="410102"))
    answers = at_once(lambda: stub.CreateCase(case, metadata=me, timeout=15))
    assert len({a.case.id for a in answers}) == 1
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)
    case_id = answers[0].case.id
    assert rows(kangyi, "tracing.cases", f"request_id = '{case.request_id}'") == 1

    contacts = tpb.AddContactsRequest(case_id=case_id, contacts=[
        tpb.Contact(person=tpb.PersonDetails(name="孙八", phone=f"136{tag % 10**8:08d}", district="410102",
                                             id_number=resident_id(f"41010219900101{tag % 1000:03d}")),
                    relation=tpb.RELATION_HOUSEHOLD, last_exposure_date=str(TODAY)),
        tpb.Contact(person=tpb.PersonDetails(name="周九", phone=f"135{tag % 10**8:08d}"), relation=tpb.RELATION_CASUAL,
                    last_exposure_date=str(TODAY))])
    answers = at_once(lambda: stub.AddContacts(contacts, metadata=me, timeout=15))
    assert len({tuple(c.task_id for c in a.contacts) for a in answers}) == 1, "every try names the same tasks"
    assert sorted(tuple(c.created for c in a.contacts) for a in answers) == [(False, False)] * (AT_ONCE - 1) + [(True, True)]
    assert rows(kangyi, "tracing.tasks", f"case_id = '{case_id}'") == 2

    task_id = answers[0].contacts[0].task_id
    claimed = stub.ClaimNextCall(tpb.ClaimNextCallRequest(reason="call a household contact"), metadata=me, timeout=10)
    assert claimed.task.id == task_id
    attempt = tpb.RecordCallAttemptRequest(task_id=task_id, request_id=f"retry-{uuid.uuid4()}",
                                           outcome=tpb.CALL_OUTCOME_REACHED, temperature_decidegrees=366,
                                           quarantine=tpb.QUARANTINE_KIND_HOME)
    answers = at_once(lambda: stub.RecordCallAttempt(attempt, metadata=me, timeout=15))
    assert len({a.attempt.id for a in answers}) == 1
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)
    assert rows(kangyi, "tracing.attempts", f"task_id = '{task_id}'") == 1

    closing = tpb.CloseTaskRequest(task_id=task_id, request_id=f"retry-{uuid.uuid4()}",
                                   reason=tpb.CLOSE_REASON_CONVERTED_TO_CASE, classification=tpb.CLASSIFICATION_SUSPECTED)
    answers = at_once(lambda: stub.CloseTask(closing, metadata=me, timeout=15))
    assert len({a.case.id for a in answers}) == 1, "one case opened for the converted contact"
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)
    assert rows(kangyi, "tracing.cases", f"id = '{answers[0].case.id}'") == 1


def test_a_verification_sent_at_once_moves_the_case_once(kangyi):
    """A hotline agent's Verify sent eight times at once (a double click, a retry): one move of the case, one
    entry in its history, one transition of the help request at intake."""
    from kangyi.verification.v1 import verification_pb2 as vpb, verification_pb2_grpc
    from test_verification import ALICE, get_case, intake_status, submit
    intake = intake_pb2_grpc.IntakeServiceStub(kangyi.channel("intake"))
    verification = verification_pb2_grpc.VerificationServiceStub(kangyi.channel("verification"))
    request, _ = submit(intake)
    wait_for(lambda: get_case(verification, request.id), what="the case from intake's feed")
    verify = vpb.VerifyRequest(case_id=request.id, request_id=f"retry-{uuid.uuid4()}", note="called back")
    answers = at_once(lambda: verification.Verify(verify, metadata=ALICE, timeout=15))
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)
    assert {a.case.state for a in answers} == {vpb.CASE_STATE_VERIFIED}
    assert [e.action for e in get_case(verification, request.id).history] == [vpb.CASE_ACTION_VERIFY]
    wait_for(lambda: intake_status(intake, request.id) == ipb.HELP_REQUEST_STATUS_VERIFIED, what="intake told")


def test_a_vehicle_log_and_a_terminal_sent_at_once_are_stored_once(kangyi):
    """A terminal's log sent eight times at once (its retry racing its first try) is one row, seven
    answers say it was a resend; an operator's registration sent eight times registers one terminal."""
    from kangyi.checkpoint.v1 import checkpoint_pb2 as cpb, checkpoint_pb2_grpc
    from test_checkpoint import log
    stub = checkpoint_pb2_grpc.CheckpointServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    operator = bearer(kangyi, "checkpoint-operator", "op-retries")
    terminal = f"RT-{uuid.uuid4().hex[:8]}"
    register = cpb.RegisterTerminalRequest(terminal_id=terminal, checkpoint="ZZ-YAOJIA")
    answers = at_once(lambda: stub.RegisterTerminal(register, metadata=operator, timeout=15))
    assert {a.terminal.terminal_id for a in answers} == {terminal}
    assert rows(kangyi, "checkpoint.terminals", f"terminal_id = '{terminal}'") == 1

    token = [("authorization", "Bearer " + new_token(kangyi, "--kind", "checkpoint-terminal", "--terminal", terminal))]
    record = cpb.RecordVehicleLogRequest(log=log(terminal, 1, plate="豫A54321"))
    answers = at_once(lambda: stub.RecordVehicleLog(record, metadata=token, timeout=15))
    assert sorted(a.replayed for a in answers) == [False] + [True] * (AT_ONCE - 1)
    assert rows(kangyi, "checkpoint.vehicle_logs", f"terminal_id = '{terminal}'") == 1
