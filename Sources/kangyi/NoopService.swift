import GRPCCore
import GRPCProtobuf
import KangyiPlatform
import SwiftProtobuf

/// `kangyi.bench.v1.Bench/Noop`: answers an empty message with an empty message on the platform's own
/// server stack (HTTP/2 transport, interceptors, logging, metrics) — what `make bench` measures as the
/// ceiling of the gRPC layer on this machine. Only `kangyi serve noop` runs it; it is not a service.
enum Noop {
    static let method = MethodDescriptor(fullyQualifiedService: "kangyi.bench.v1.Bench", method: "Noop")

    static let definition = ServiceDefinition(name: "noop", defaultPort: 50099, migrations: []) { _ in
        AssembledService(rpcServices: [Handler()])
    }

    struct Handler: RegistrableRPCService {
        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Noop.method, deserializer: ProtobufDeserializer<Google_Protobuf_Empty>(),
                serializer: ProtobufSerializer<Google_Protobuf_Empty>()
            ) { request, _ in
                for try await _ in request.messages {}
                return StreamingServerResponse(single: ServerResponse(message: Google_Protobuf_Empty()))
            }
        }
    }
}
