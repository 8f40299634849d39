"""Verification from Python grpcio: the whole path of a case, and verification and intake as two real
processes — including intake going away in the middle of a transition and coming back."""
import base64
import os
import uuid

import grpc
import pytest

from kangyi_testing import Served, free_port, fresh_database, migrate, wait_for
from signing import signing_channel
from kangyi.intake.v1 import intake_pb2 as ipb, intake_pb2_grpc
from kangyi.verification.v1 import verification_pb2 as vpb, verification_pb2_grpc

ALICE = [("x-kangyi-caller", "alice"), ("x-kangyi-department", "hotline")]


def submit(intake, phone=None, category="food_supply"):
    """Stores a help request; returns it with the (unmasked) phone it was filed with."""
    phone = phone or f"139{uuid.uuid4().int % 10**8:08d}"
    request = ipb.SubmitHelpRequestRequest(
        request_id=f"py-{uuid.uuid4()}", category=category, district="410102",
        contact=ipb.Contact(phone=phone, name="王五"), description=f"家里断粮了 {uuid.uuid4()}",
        urgency=ipb.URGENCY_URGENT)
    return intake.SubmitHelpRequest(request, metadata=[("x-kangyi-caller", "citizen-app")], timeout=10).help_request, phone


def get_case(verification, case_id):
    try:
        return verification.GetCase(vpb.GetCaseRequest(case_id=case_id), metadata=ALICE, timeout=5)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def intake_status(intake, help_request_id):
    return intake.GetHelpRequest(ipb.GetHelpRequestRequest(id=help_request_id), timeout=5).help_request.status


def test_the_whole_path_of_a_case(kangyi):
    intake = intake_pb2_grpc.IntakeServiceStub(kangyi.channel("intake"))
    verification = verification_pb2_grpc.VerificationServiceStub(kangyi.channel("verification"))
    request, phone = submit(intake)
    # The case arrives from intake's change feed.
    got = wait_for(lambda: get_case(verification, request.id), what="case from the feed")
    assert got.case.ticket == request.ticket and got.case.state == vpb.CASE_STATE_SUBMITTED
    assert got.case.verify_due_time.ToDatetime() > got.case.submit_time.ToDatetime()

    def act(method, request_id=None, **fields):
        return getattr(verification, method)(
            getattr(vpb, f"{method}Request")(
                case_id=request.id, request_id=request_id or f"{method}-{request.id}", **fields),
            metadata=ALICE, timeout=10)

    assert act("Verify", note="called back, confirmed").intake_sync == vpb.INTAKE_SYNC_SYNCED
    assert intake_status(intake, request.id) == ipb.HELP_REQUEST_STATUS_VERIFIED
    # A retry is a replay, not a second transition.
    assert act("Verify", note="called back, confirmed").replayed
    act("Assign", department="commerce")
    act("Resolve", resolution="rice and oil delivered by the community")
    closed = act("RecordReturnVisit", reached=True, satisfaction=vpb.SATISFACTION_SATISFIED)
    assert closed.case.state == vpb.CASE_STATE_CLOSED
    assert intake_status(intake, request.id) == ipb.HELP_REQUEST_STATUS_CLOSED

    history = get_case(verification, request.id).history
    assert [e.action for e in history] == [
        vpb.CASE_ACTION_VERIFY, vpb.CASE_ACTION_ASSIGN, vpb.CASE_ACTION_RESOLVE, vpb.CASE_ACTION_RETURN_VISIT]
    assert {e.actor.caller for e in history} == {"alice"}
    assert history[0].actor.department == "hotline"

    # The same request id again is a replay; a new one is a forbidden move: FAILED_PRECONDITION naming
    # the state, with ErrorInfo details.
    assert act("Assign", department="commerce").replayed
    with pytest.raises(grpc.RpcError) as forbidden:
        act("Assign", request_id="assign-again", department="commerce")
    assert forbidden.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "the case is closed" in forbidden.value.details()
    assert any(key == "grpc-status-details-bin" for key, _ in forbidden.value.trailing_metadata())

    # Without a staff identity nothing happens.
    with pytest.raises(grpc.RpcError) as anonymous:
        verification.Reopen(vpb.ReopenRequest(case_id=request.id, request_id="x", reason="r"), timeout=5)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    statistics = verification.GetStatistics(vpb.GetStatisticsRequest(), metadata=ALICE, timeout=5)
    assert statistics.time_to_verify.count >= 1 and statistics.time_to_resolve.count >= 1
    assert statistics.satisfied >= 1
    # No personal data in the log.
    assert phone not in kangyi.log()


@pytest.fixture()
def two_processes(tmp_path):
    intake_port, verification_port = free_port(), free_port()
    env = dict(
        os.environ, KANGYI_DATABASE_URL=fresh_database("two_processes"),
        KANGYI_IDENTITY_KEY=base64.b64encode(os.urandom(32)).decode(),
        KANGYI_INTAKE_ADDRESS=f"127.0.0.1:{intake_port}", KANGYI_BACKGROUND_POLL_MS="200")
    intake = Served("intake", env, tmp_path / "intake.log", port=intake_port)
    verification = Served("verification", env, tmp_path / "verification.log", port=verification_port)
    # Migrations first, so two processes starting together do not race for them (they would wait
    # on the advisory lock anyway).
    migrate(env["KANGYI_DATABASE_URL"])
    yield intake.start(), verification.start()
    for server in (verification, intake):
        if server.process.poll() is None:
            server.stop()


def test_two_processes_converge_when_intake_goes_away(two_processes):
    intake_server, verification_server = two_processes
    intake = intake_pb2_grpc.IntakeServiceStub(signing_channel(f"127.0.0.1:{intake_server.port}", intake_server.key))
    verification = verification_pb2_grpc.VerificationServiceStub(
        signing_channel(f"127.0.0.1:{verification_server.port}", verification_server.key))
    request, phone = submit(intake)

    claimed = wait_for(
        lambda: verification.ClaimNext(vpb.ClaimNextRequest(), metadata=ALICE, timeout=5).HasField("case") and
        verification.ClaimNext(vpb.ClaimNextRequest(), metadata=ALICE, timeout=5), what="a case to claim")
    assert claimed.case.id == request.id and claimed.case.claim.claimed_by == "alice"
    bob = verification.ClaimNext(vpb.ClaimNextRequest(), metadata=[("x-kangyi-caller", "bob")], timeout=5)
    assert not bob.HasField("case")

    # Intake goes away; the transition still stands, and says it is pending.
    intake_server.stop()
    verified = verification.Verify(
        vpb.VerifyRequest(case_id=request.id, request_id="verify-1"), metadata=ALICE, timeout=10)
    assert verified.case.state == vpb.CASE_STATE_VERIFIED
    assert verified.intake_sync == vpb.INTAKE_SYNC_PENDING

    # Submitted while verification is down too: the feed resumes from its cursor afterwards.
    verification_server.stop()
    intake_server.start()
    later, _ = submit(intake)
    verification_server.start()

    wait_for(lambda: intake_status(intake, request.id) == ipb.HELP_REQUEST_STATUS_VERIFIED, what="intake converged")
    wait_for(lambda: get_case(verification, later.id), what="the later submission queued")
    case = get_case(verification, request.id).case
    assert case.pending_intake_transitions == 0
    # The retry after all that is still a replay.
    again = verification.Verify(
        vpb.VerifyRequest(case_id=request.id, request_id="verify-1"), metadata=ALICE, timeout=10)
    assert again.replayed and again.intake_sync == vpb.INTAKE_SYNC_SYNCED
    log = verification_server.log_path.read_text()
    assert "intake has not taken a transition" in log
    assert phone not in log
