"""The platform as an outside gRPC client sees it: health, reflection, errors, request ids, metrics."""
import urllib.request

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

INTAKE = "kangyi.intake.v1.IntakeService"


def test_health_check_serving_for_the_server_and_each_service(kangyi):
    health = health_pb2_grpc.HealthStub(kangyi.channel())
    for service in ["", INTAKE]:
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as error:
        health.Check(health_pb2.HealthCheckRequest(service="kangyi.nope.v1.Nope"), timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_watch_streams_the_current_status(kangyi):
    health = health_pb2_grpc.HealthStub(kangyi.channel())
    stream = health.Watch(health_pb2.HealthCheckRequest(service=INTAKE), timeout=10)
    first = next(stream)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()


def test_reflection_lists_services_and_describes_them(kangyi):
    database = ProtoReflectionDescriptorDatabase(kangyi.channel())  # speaks v1alpha
    services = set(database.get_services())
    assert {INTAKE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= services

    # From nothing but reflection, build the request type and call the method.
    pool = descriptor_pool.DescriptorPool(database)
    method = pool.FindServiceByName(INTAKE).methods_by_name["ListCategories"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = kangyi.channel().unary_unary(f"/{INTAKE}/ListCategories",
                                        request_serializer=request_class.SerializeToString,
                                        response_deserializer=response_class.FromString)
    codes = [c.code for c in call(request_class(), timeout=5).categories]
    assert codes == ["epidemic_policy", "transport", "medical", "education", "food_supply", "health_code", "other"]


def test_reflection_v1_answers_too(kangyi):
    # grpc.reflection.v1 has the same messages as v1alpha on the wire; grpcio only ships v1alpha's.
    call = kangyi.channel().stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                          request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                          response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=INTAKE),
                reflection_pb2.ServerReflectionRequest(file_by_filename="nope.proto")]
    listed, described, missing = list(call(iter(requests), timeout=5))
    assert INTAKE in [s.name for s in listed.list_services_response.service]
    files = [descriptor_pb2.FileDescriptorProto.FromString(b).name
             for b in described.file_descriptor_response.file_descriptor_proto]
    assert files[0] == "kangyi/intake/v1/intake.proto" and "kangyi/common/v1/common.proto" in files
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_unknown_method_is_unimplemented(kangyi):
    call = kangyi.channel().unary_unary(f"/{INTAKE}/NoSuchMethod")
    with pytest.raises(grpc.RpcError) as error:
        call(b"", timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_malformed_message_is_a_clear_error_not_a_crash(kangyi):
    call = kangyi.channel().unary_unary(f"/{INTAKE}/ListCategories")
    with pytest.raises(grpc.RpcError) as error:
        call(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)  # field 1, a length far past the end
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "deserialize" in error.value.details()
    # ...and the server is still there.
    health = health_pb2_grpc.HealthStub(kangyi.channel())
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_request_id_is_echoed_and_logged_with_the_call(kangyi):
    from kangyi.intake.v1 import intake_pb2, intake_pb2_grpc
    stub = intake_pb2_grpc.IntakeServiceStub(kangyi.channel())
    _, call = stub.ListCategories.with_call(intake_pb2.ListCategoriesRequest(), timeout=5,
                                            metadata=[("x-request-id", "interop-req-1")])
    assert ("x-request-id", "interop-req-1") in call.initial_metadata()
    lines = [l for l in kangyi.log_lines() if l.get("request_id") == "interop-req-1"]
    assert len(lines) == 1
    assert lines[0]["method"] == f"{INTAKE}/ListCategories" and lines[0]["code"] == "ok"
    assert float(lines[0]["duration_ms"]) >= 0


def test_metrics_are_served_in_prometheus_text(kangyi):
    from kangyi.intake.v1 import intake_pb2, intake_pb2_grpc
    intake_pb2_grpc.IntakeServiceStub(kangyi.channel()).ListCategories(intake_pb2.ListCategoriesRequest(), timeout=5)
    with urllib.request.urlopen(f"http://{kangyi.info['metrics']}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        body = response.read().decode()
    assert f'kangyi_rpc_total{{method="{INTAKE}/ListCategories",code="ok",caller="anonymous"}}' in body


def test_sigterm_stops_the_process_cleanly(tmp_path):
    from kangyi_testing import Kangyi
    server = Kangyi(tmp_path)
    assert server.stop() == 0
    assert not (tmp_path / "dev.json").exists()
