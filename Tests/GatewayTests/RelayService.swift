import GRPCCore
import GRPCProtobuf
import KangyiPlatform
import SwiftProtobuf

/// A backend only tests use, with one method of every RPC kind (no service of the platform has client
/// or bidirectional streaming yet): `kangyi.test.v1.Relay`, messages `google.protobuf.StringValue`.
struct RelayService: RegistrableRPCService {
    static let service = "kangyi.test.v1.Relay"
    static let echo = MethodDescriptor(fullyQualifiedService: service, method: "Echo")
    static let split = MethodDescriptor(fullyQualifiedService: service, method: "Split")
    static let join = MethodDescriptor(fullyQualifiedService: service, method: "Join")
    static let chat = MethodDescriptor(fullyQualifiedService: service, method: "Chat")
    static let slow = MethodDescriptor(fullyQualifiedService: service, method: "Slow")
    static let fail = MethodDescriptor(fullyQualifiedService: service, method: "Fail")
    static let oversized = MethodDescriptor(fullyQualifiedService: service, method: "Oversized")

    typealias Message = Google_Protobuf_StringValue

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let de = ProtobufDeserializer<Message>()
        let se = ProtobufSerializer<Message>()
        // What the backend was told: identity, a caller's own header, a forged one, the deadline.
        router.registerHandler(forMethod: Self.echo, deserializer: de, serializer: se) { request, _ in
            let message = try await ServerRequest(stream: request).message
            let identity = CallerIdentity.current
            let seen = [
                "value=\(message.value)", "caller=\(identity.caller)", "department=\(identity.department)",
                "scopes=\(identity.scopes.sorted().joined(separator: ","))",
                "x-custom=\(request.metadata[stringValues: "x-custom"].joined(separator: ","))",
                "authorization=\(request.metadata[stringValues: "authorization"].joined(separator: ","))",
                "request-id=\(identity.requestID)",
                // What the backend's server took from the call's `grpc-timeout`, in that header's form.
                "deadline=\(GRPCTimeout.remaining.map { "\($0.inMicroseconds / 1000)m" } ?? "")",
            ]
            return StreamingServerResponse(
                single: ServerResponse(message: .with { $0.value = seen.joined(separator: "|") }, metadata: ["x-backend-header": "hello"]))
        }
        router.registerHandler(forMethod: Self.split, deserializer: de, serializer: se) { request, _ in
            let message = try await ServerRequest(stream: request).message
            return StreamingServerResponse { writer in
                for part in message.value.split(separator: ",") { try await writer.write(.with { $0.value = String(part) }) }
                return ["x-backend-trailer": "split-done"]
            }
        }
        router.registerHandler(forMethod: Self.join, deserializer: de, serializer: se) { request, _ in
            var parts: [String] = []
            for try await message in request.messages { parts.append(message.value) }
            return StreamingServerResponse(single: ServerResponse(message: .with { $0.value = parts.joined(separator: "+") }))
        }
        router.registerHandler(forMethod: Self.chat, deserializer: de, serializer: se) { request, _ in
            StreamingServerResponse { writer in
                for try await message in request.messages { try await writer.write(.with { $0.value = "echo:\(message.value)" }) }
                return [:]
            }
        }
        router.registerHandler(forMethod: Self.slow, deserializer: de, serializer: se) { request, context in
            try await Task.sleep(for: .seconds(5))
            return StreamingServerResponse(single: ServerResponse(message: .with { $0.value = "slept" }))
        }
        router.registerHandler(forMethod: Self.fail, deserializer: de, serializer: se) { _, _ in
            throw RPCError(
                code: .failedPrecondition, message: "the relay refuses",
                metadata: ["x-backend-trailer": "kept", "grpc-status-details-bin": .binary([1, 2, 3])])
        }
        // Trailers beyond the 16 KiB header list a client accepts, shaped like a status with long details:
        // a backend's fault the gateway must survive.
        router.registerHandler(forMethod: Self.oversized, deserializer: de, serializer: se) { _, _ in
            throw RPCError(
                code: .invalidArgument, message: String(repeating: "field: too much to say; ", count: 180),
                metadata: ["grpc-status-details-bin": .binary((0..<9_000).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) })])
        }
    }

    /// The methods as a descriptor set the gateway can route by (the embedded one does not know them).
    static var descriptorFile: Google_Protobuf_FileDescriptorProto {
        .with {
            $0.name = "kangyi/test/v1/relay.proto"
            $0.package = "kangyi.test.v1"
            $0.dependency = ["google/protobuf/wrappers.proto"]
            $0.service = [
                .with {
                    $0.name = "Relay"
                    $0.method = [
                        ("Echo", false, false), ("Split", false, true), ("Join", true, false), ("Chat", true, true),
                        ("Slow", false, false), ("Fail", false, false), ("Oversized", false, false),
                    ].map { name, clientStreaming, serverStreaming in
                        .with {
                            $0.name = name
                            $0.inputType = ".google.protobuf.StringValue"
                            $0.outputType = ".google.protobuf.StringValue"
                            $0.clientStreaming = clientStreaming
                            $0.serverStreaming = serverStreaming
                        }
                    }
                }
            ]
        }
    }
}
