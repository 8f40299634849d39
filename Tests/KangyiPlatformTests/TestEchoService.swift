import GRPCCore
import GRPCProtobuf
import KangyiPlatform
import SwiftProtobuf
import Synchronization

/// A service only tests use, registered by hand (no proto of its own): `kangyi.test.v1.Echo`.
/// `Say` answers with the caller's identity, or fails on cue; `Count` streams; `Slow` takes its time.
struct TestEchoService: RegistrableRPCService {
    /// How many `Slow` calls have reached their handler: tests wait on it instead of guessing a delay.
    let slowStarted = Counter()

    final class Counter: Sendable {
        private let value = Mutex(0)
        func increment() { value.withLock { $0 += 1 } }
        var count: Int { value.withLock { $0 } }
    }

    static let say = MethodDescriptor(fullyQualifiedService: "kangyi.test.v1.Echo", method: "Say")
    static let count = MethodDescriptor(fullyQualifiedService: "kangyi.test.v1.Echo", method: "Count")
    static let slow = MethodDescriptor(fullyQualifiedService: "kangyi.test.v1.Echo", method: "Slow")
    static let waitForCancellation = MethodDescriptor(fullyQualifiedService: "kangyi.test.v1.Echo", method: "WaitForCancellation")

    struct Boom: Error, CustomStringConvertible {
        var description: String { "boom: 13800138000 leaked" }
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.say, deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(),
            serializer: ProtobufSerializer<Google_Protobuf_StringValue>()
        ) { request, _ in
            let message = try await ServerRequest(stream: request).message
            switch message.value {
            case "invalid":
                throw ServiceError.invalidArgument(field: "value", reason: "INVALID_VALUE", "must not be \"invalid\"")
            case "missing":
                throw ServiceError.notFound("thing")
            case "boom":
                throw Boom()
            default:
                let identity = CallerIdentity.current
                return StreamingServerResponse(
                    single: ServerResponse(message: .with { $0.value = "\(identity.caller)|\(identity.requestID)" }))
            }
        }
        router.registerHandler(
            forMethod: Self.count, deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(),
            serializer: ProtobufSerializer<Google_Protobuf_StringValue>()
        ) { _, _ in
            StreamingServerResponse { writer in
                for index in 1...3 { try await writer.write(.with { $0.value = "\(index)" }) }
                if CallerIdentity.current.caller == "fail-late" { throw ServiceError.failedPrecondition(reason: "LATE", "late failure") }
                return [:]
            }
        }
        router.registerHandler(
            forMethod: Self.slow, deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(),
            serializer: ProtobufSerializer<Google_Protobuf_StringValue>()
        ) { request, _ in
            let message = try await ServerRequest(stream: request).message
            slowStarted.increment()
            try await Task.sleep(for: .milliseconds(Int(message.value) ?? 500))
            return StreamingServerResponse(single: ServerResponse(message: .with { $0.value = "done" }))
        }
        // Waits up to the milliseconds it is sent for the RPC to be cancelled, and says whether it was.
        router.registerHandler(
            forMethod: Self.waitForCancellation, deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(),
            serializer: ProtobufSerializer<Google_Protobuf_StringValue>()
        ) { request, context in
            let patience = Int(try await ServerRequest(stream: request).message.value) ?? 10_000
            let started = ContinuousClock.now
            let deadline = GRPCTimeout.deadline == nil ? "no deadline" : "deadline set"
            // Whichever comes first: the RPC's cancellation or the end of its patience.
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await context.cancellation.cancelled }
                group.addTask { try? await Task.sleep(for: .milliseconds(patience)) }
                await group.next()
                group.cancelAll()
            }
            let answer = context.cancellation.isCancelled
                ? "cancelled after \(ContinuousClock.now - started), \(deadline)" : "not cancelled, \(deadline)"
            return StreamingServerResponse(single: ServerResponse(message: .with { $0.value = answer }))
        }
    }
}

extension GRPCClient {
    func say(_ value: String, metadata: Metadata = [:]) async throws -> (String, Metadata) {
        try await unary(
            request: ClientRequest(message: Google_Protobuf_StringValue.with { $0.value = value }, metadata: metadata),
            descriptor: TestEchoService.say, serializer: ProtobufSerializer<Google_Protobuf_StringValue>(),
            deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(), options: .defaults
        ) { response in (try response.message.value, response.metadata) }
    }

    func slow(milliseconds: Int) async throws -> String {
        try await unary(
            request: ClientRequest(message: Google_Protobuf_StringValue.with { $0.value = "\(milliseconds)" }),
            descriptor: TestEchoService.slow, serializer: ProtobufSerializer<Google_Protobuf_StringValue>(),
            deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(), options: .defaults
        ) { try $0.message.value }
    }

    func waitForCancellation(metadata: Metadata, patience: Duration = .seconds(10)) async throws -> String {
        try await unary(
            request: ClientRequest(
                message: Google_Protobuf_StringValue.with { $0.value = "\(patience.inMicroseconds / 1000)" },
                metadata: metadata),
            descriptor: TestEchoService.waitForCancellation, serializer: ProtobufSerializer<Google_Protobuf_StringValue>(),
            deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(), options: .defaults
        ) { try $0.message.value }
    }

    func count(metadata: Metadata = [:]) async throws -> [String] {
        try await serverStreaming(
            request: ClientRequest(message: Google_Protobuf_StringValue(), metadata: metadata),
            descriptor: TestEchoService.count, serializer: ProtobufSerializer<Google_Protobuf_StringValue>(),
            deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(), options: .defaults
        ) { response in
            var values: [String] = []
            for try await message in response.messages { values.append(message.value) }
            return values
        }
    }
}
