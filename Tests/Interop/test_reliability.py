"""What an outsider can send and what they get: forged identities, oversize messages, NUL characters."""
import json
import urllib.error
import urllib.request
import uuid

import grpc
import pytest

from kangyi.intake.v1 import intake_pb2 as pb, intake_pb2_grpc
from test_gateway import gateway
from kangyi_testing import help_request

FORGED = [("x-kangyi-caller", "developer"), ("x-kangyi-scopes", "pii.read")]


def submitted(kangyi):
    request_id, phone = f"rel-{uuid.uuid4()}", f"139{uuid.uuid4().int % 10**8:08d}"
    stub = intake_pb2_grpc.IntakeServiceStub(kangyi.channel())
    return stub.SubmitHelpRequest(help_request(request_id, phone), timeout=10).help_request, phone


def test_a_backend_refuses_identity_headers_it_cannot_verify(kangyi):
    filed, phone = submitted(kangyi)
    raw = intake_pb2_grpc.IntakeServiceStub(kangyi.raw_channel())
    for metadata in (FORGED, FORGED + [("x-kangyi-identity", "v1.99999999999999.AAAA")]):
        with pytest.raises(grpc.RpcError) as refused:
            raw.GetHelpRequest(pb.GetHelpRequestRequest(id=filed.id), metadata=metadata, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Anonymous (no claim) is answered, masked; a signed claim (a peer service) is believed.
    masked = raw.GetHelpRequest(pb.GetHelpRequestRequest(id=filed.id), timeout=5).help_request
    assert masked.contact.phone != phone
    signed = intake_pb2_grpc.IntakeServiceStub(kangyi.channel())
    assert signed.GetHelpRequest(pb.GetHelpRequestRequest(id=filed.id), metadata=FORGED, timeout=5).help_request.contact.phone == phone
    # Health and reflection stay open even with forged headers.
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    health = health_pb2_grpc.HealthStub(kangyi.raw_channel())
    assert health.Check(health_pb2.HealthCheckRequest(), metadata=FORGED, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    assert phone not in kangyi.log()


def submit_of_size(kangyi, door, megabytes):
    """SubmitHelpRequest with a description of about `megabytes` MiB, to intake or through the gateway;
    returns the RpcError it must raise."""
    options = [("grpc.max_send_message_length", 64 << 20)]
    stub = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(
        kangyi.addresses[door] if door == "intake" else gateway(kangyi)["grpc"], options=options))
    request = help_request(f"big-{uuid.uuid4()}", text="很" * ((megabytes << 20) // 3 + 1))
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitHelpRequest(request, metadata=[("authorization", f"Bearer {kangyi.info['token']}")], timeout=10)
    return error


@pytest.mark.parametrize("door", ["intake", "gateway"])
def test_an_oversize_message_is_resource_exhausted_naming_the_limit(kangyi, door):
    error = submit_of_size(kangyi, door, 5)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4194304 bytes" in error.value.details()


@pytest.mark.parametrize("door", ["intake", "gateway"])
def test_a_message_beyond_twice_the_limit_is_reset_not_unavailable(kangyi, door):
    """grpc-swift's transport resets a stream whose message passes its ceiling; through the gateway the
    caller sees the same reset, never UNAVAILABLE (which would invite a retry of the same message)."""
    error = submit_of_size(kangyi, door, 9)
    assert error.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL)


def test_the_json_door_refuses_an_oversize_body_naming_the_limit(kangyi):
    body = json.dumps({"description": "x" * (5 << 20)}).encode()
    request = urllib.request.Request(
        f"http://{gateway(kangyi)['http']}/kangyi.intake.v1.IntakeService/SubmitHelpRequest", data=body, method="POST",
        headers={"authorization": f"Bearer {kangyi.info['token']}", "content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    answer = json.loads(error.value.read())
    assert "4194304 bytes" in json.dumps(answer)


def test_a_nul_character_is_invalid_argument_naming_the_field(kangyi):
    stub = intake_pb2_grpc.IntakeServiceStub(kangyi.channel())
    bad = help_request(f"nul-{uuid.uuid4()}")
    bad.contact.address = "中原区\x00"
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitHelpRequest(bad, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(error.value.trailing_metadata()).get("grpc-status-details-bin", b"")
    assert b"contact.address" in details and b"INVALID_CHARACTER" in details
