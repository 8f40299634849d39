"""Concurrent retries through the gateway: the same write sent eight times at once — a client retrying on a
timeout while its first try is still in flight, or the same form sent from two devices — is done once. Every
answer names the one stored thing, exactly one answer is not a replay, and the table holds one row."""
import threading
import uuid

import grpc

from kangyi.common.v1 import common_pb2
from kangyi.intake.v1 import intake_pb2 as ipb, intake_pb2_grpc
from kangyi.pricewatch.v1 import pricewatch_pb2 as ppb, pricewatch_pb2_grpc
from kangyi_testing import help_request, psql
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
