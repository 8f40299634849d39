#!/usr/bin/env python3
"""Call any Kangyi RPC with a JSON body, like grpcurl: the server's reflection service supplies the types.

    .venv/bin/python scripts/call.py 127.0.0.1:50051 kangyi.intake.v1.IntakeService/ListCategories '{}'
    .venv/bin/python scripts/call.py 127.0.0.1:50051 list            # the services the server offers

Unary calls print the response; server-streaming calls print one JSON object per message.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    target, method = argv[1], argv[2]
    body = argv[3] if len(argv) > 3 else "{}"
    metadata = [tuple(h.split(":", 1)) for h in argv[4:]]
    channel = grpc.insecure_channel(target)
    database = ProtoReflectionDescriptorDatabase(channel)
    if method == "list":
        print("\n".join(database.get_services()))
        return 0
    service_name, method_name = method.split("/")
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName(service_name)
    rpc = service.methods_by_name[method_name]
    request_class = message_factory.GetMessageClass(rpc.input_type)
    response_class = message_factory.GetMessageClass(rpc.output_type)
    request = json_format.Parse(body, request_class())
    path = f"/{service_name}/{method_name}"
    show = lambda m: print(json.dumps(json_format.MessageToDict(m), ensure_ascii=False, indent=2))
    try:
        if rpc.server_streaming:
            call = channel.unary_stream(path, request_serializer=request_class.SerializeToString,
                                        response_deserializer=response_class.FromString)
            for message in call(request, metadata=metadata):
                show(message)
        else:
            call = channel.unary_unary(path, request_serializer=request_class.SerializeToString,
                                       response_deserializer=response_class.FromString)
            show(call(request, metadata=metadata))
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
