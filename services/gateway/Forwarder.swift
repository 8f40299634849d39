import Foundation
import GRPCCore
import KangyiPlatform

/// Forwards every method of the routed services to its backend without decoding a message: bytes in,
/// bytes out. Every kind of RPC travels as a bidirectional stream (the wire does not tell them apart).
/// Request metadata is passed on except what the gateway owns (identity, authorization, transport
/// headers); the caller's deadline becomes the backend call's; the backend's messages, trailers and
/// status come back unchanged.
struct Forwarder<Transport: ClientTransport>: RegistrableRPCService {
    /// Routed methods with the client of the backend that serves each.
    let routes: [(method: Routes.Method, backend: BackendClients<Transport>)]
    /// Where a stream registers under the token that admitted it.
    let openStreams: OpenStreams

    func registerMethods<Server: ServerTransport>(with router: inout RPCRouter<Server>) {
        for (method, backend) in routes {
            router.registerHandler(
                forMethod: method.descriptor, deserializer: RawBytes(), serializer: RawBytes()
            ) { [openStreams] request, context in
                try await Self.forward(request, method: method, to: backend, openStreams: openStreams)
            }
        }
    }

    static func forward(
        _ request: StreamingServerRequest<[UInt8]>, method: Routes.Method, to backend: BackendClients<Transport>,
        openStreams: OpenStreams
    ) async throws -> StreamingServerResponse<[UInt8]> {
        let options = CallOptions.forwarding(timeout: GRPCTimeout.remaining)
        let metadata = ForwardedMetadata.filter(request.metadata)
        // A single request message is read before the backend is called: the caller's stream is then never
        // abandoned half-read when the backend answers early (grpc-swift resets such a stream).
        let outgoing: StreamingClientRequest<[UInt8]>
        if method.clientStreaming {
            outgoing = StreamingClientRequest(metadata: metadata) { out in
                for try await message in request.messages { try await out.write(message) }
            }
        } else {
            var received: [[UInt8]] = []
            for try await message in request.messages { received.append(message) }
            if !method.serverStreaming, received.count == 1 {
                return try await forwardUnary(received[0], metadata: metadata, method: method, to: backend, options: options)
            }
            let messages = received
            outgoing = StreamingClientRequest(metadata: metadata) { out in try await out.write(contentsOf: messages) }
        }
        // The backend's response headers become ours; a backend that refuses at once is refused here.
        let (call, headers) = try await BackendCall.open(
            backend: backend, method: method.descriptor, request: outgoing, options: options,
            retryable: !method.clientStreaming)
        let token = Admission.admitted?.id
        return StreamingServerResponse(metadata: ForwardedMetadata.filter(headers)) { writer in
            try await openStreams.relaying(call, under: token) { try await call.relay(to: writer) }
        }
    }

    /// A unary call, answered whole: no task or streams of its own (``BackendCall``), which were a
    /// large part of the gateway's CPU per submission. UNAVAILABLE before an answer is retried as
    /// ``BackendCall/open`` does.
    private static func forwardUnary(
        _ message: [UInt8], metadata: Metadata, method: Routes.Method, to backend: BackendClients<Transport>, options: CallOptions
    ) async throws -> StreamingServerResponse<[UInt8]> {
        do {
            let answer = try await BackendCall<Transport>.retryingUnavailable(retryable: true) {
                try await backend.call { client in
                    try await client.unary(
                        request: ClientRequest(message: message, metadata: metadata), descriptor: method.descriptor,
                        serializer: RawBytes(), deserializer: RawBytes(), options: options
                    ) { response in
                        let contents = try response.accepted.get()
                        return ServerResponse(
                            message: try contents.message.get(), metadata: ForwardedMetadata.filter(contents.metadata),
                            trailingMetadata: ForwardedMetadata.filter(contents.trailingMetadata))
                    }
                }
            }
            return StreamingServerResponse(single: answer)
        } catch {
            throw BackendCall<Transport>.relayable(error)
        }
    }
}

/// What of a call's metadata crosses the gateway, either way.
enum ForwardedMetadata {
    /// Metadata minus what the gateway owns or the transport sets: identity headers (the peer client
    /// sets them from the verified token), the bearer token, and gRPC's and HTTP/2's own headers.
    static func filter(_ metadata: Metadata) -> Metadata {
        var kept = Metadata()
        for (key, value) in metadata {
            let lower = key.lowercased()
            if lower.hasPrefix(":") || lower.hasPrefix("grpc-") && lower != "grpc-status-details-bin" { continue }
            if dropped.contains(lower) { continue }
            switch value {
            case .string(let string): kept.addString(string, forKey: key)
            case .binary(let bytes): kept.addBinary(bytes, forKey: key)
            }
        }
        return kept
    }

    /// What the gateway owns and never passes on from a caller: the bearer token, the request id (the
    /// gateway's own, signed) and the identity claims. The front door drops the same.
    static let gatewayOwned: Set<String> =
        Set(["authorization", CallerIdentity.requestIDKey] + CallerIdentity.gatewayOwnedKeys)

    /// Built once: the filter runs for every header of every forwarded call. The rest are the transport's.
    static let dropped: Set<String> = gatewayOwned.union(["te", "content-type", "user-agent", GRPCTimeout.receivedKey])

    /// The most header bytes a caller may send through the gateway, as HTTP/2 counts them (name, value
    /// and 32 a field). A backend refuses a header list beyond 16 KiB by closing the connection it came on,
    /// with every call relayed on it, and the gateway adds the caller's identity (under 1 KiB) to what it
    /// passes on: one caller's 15.7 KiB of headers once ended every call in flight to intake. Beyond this
    /// the gateway refuses the call itself: RESOURCE_EXHAUSTED `HEADERS_TOO_LARGE`.
    static let callerHeaderLimit = 8 * 1024

    /// `metadata`'s size as it travels (a binary value in base64).
    static func size(of metadata: Metadata) -> Int {
        metadata.reduce(0) { size, entry in
            switch entry.value {
            case .string(let text): size + entry.key.utf8.count + text.utf8.count + 32
            case .binary(let bytes): size + entry.key.utf8.count + (bytes.count + 2) / 3 * 4 + 32
            }
        }
    }

    static func headersTooLarge(size: Int) -> ServiceError {
        ServiceError(
            code: .resourceExhausted, reason: "HEADERS_TOO_LARGE",
            message: "the request's headers come to \(size) bytes; the gateway passes on at most \(callerHeaderLimit)")
    }
}

/// Messages as their bytes: the gateway never decodes them.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

extension CallOptions {
    /// A forwarded call: fail fast when the backend is down, and keep the caller's deadline.
    static func forwarding(timeout: Duration?) -> CallOptions {
        var options = CallOptions.defaults
        options.waitForReady = false
        options.timeout = timeout
        return options
    }
}

/// One call to a backend, run in its own task so that its response headers can be awaited before the
/// gateway answers (grpc-swift sends a response's headers before its producer runs), then its messages
/// and trailers relayed by the producer. Cancelling the RPC, or dropping the relay unread, cancels it.
final class BackendCall<Transport: ClientTransport>: Sendable {
    private let task: Task<Void, Never>
    private let headerStream: AsyncThrowingStream<Metadata, any Error>
    private let parts: AsyncThrowingStream<StreamingClientResponse<[UInt8]>.Contents.BodyPart, any Error>
    private let partSink: AsyncThrowingStream<StreamingClientResponse<[UInt8]>.Contents.BodyPart, any Error>.Continuation

    init(
        backend: BackendClients<Transport>, method: MethodDescriptor, request: StreamingClientRequest<[UInt8]>,
        options: CallOptions
    ) {
        let (headerStream, headerSink) = AsyncThrowingStream.makeStream(of: Metadata.self)
        let (parts, partSink) = AsyncThrowingStream.makeStream(of: StreamingClientResponse<[UInt8]>.Contents.BodyPart.self)
        self.headerStream = headerStream
        self.parts = parts
        self.partSink = partSink
        let identity = CallerIdentity.current
        task = Task {
            do {
                try await CallerIdentity.$current.withValue(identity) {
                    try await backend.call { client in
                        try await client.bidirectionalStreaming(
                            request: request, descriptor: method, serializer: RawBytes(), deserializer: RawBytes(),
                            options: options
                        ) { response in
                            let contents = try response.accepted.get()
                            headerSink.yield(contents.metadata)
                            headerSink.finish()
                            for try await part in contents.bodyParts { partSink.yield(part) }
                        }
                    }
                }
                partSink.finish()
            } catch {
                headerSink.finish(throwing: Self.relayable(error))
                partSink.finish(throwing: Self.relayable(error))
            }
        }
        let task = task
        partSink.onTermination = { termination in
            if case .cancelled = termination { task.cancel() }
        }
    }

    deinit { task.cancel() }

    /// Ends the call from outside (its token revoked, ``OpenStreams``): whoever reads its messages gets
    /// `error` next, and the backend call is cancelled.
    func end(throwing error: any Error) {
        partSink.finish(throwing: error)
        task.cancel()
    }

    /// Starts the call and waits for the backend's response headers (retried as ``retryingUnavailable``).
    static func open(
        backend: BackendClients<Transport>, method: MethodDescriptor, request: StreamingClientRequest<[UInt8]>,
        options: CallOptions, retryable: Bool
    ) async throws -> (BackendCall, Metadata) {
        try await retryingUnavailable(retryable: retryable) {
            let call = BackendCall(backend: backend, method: method, request: request, options: options)
            return (call, try await call.headers())
        }
    }

    /// UNAVAILABLE before any answer means nothing reached the backend: a `retryable` call (its request in
    /// hand) is tried twice more, 100 and 200 ms later — across a backend's restart or a connection still
    /// being made — and still fails fast when the backend is down.
    static func retryingUnavailable<T>(retryable: Bool, _ attempt: () async throws -> T) async throws -> T {
        var tries = 1
        while true {
            do {
                return try await attempt()
            } catch let error as RPCError where error.code == .unavailable && retryable && tries < 3 {
                try await Task.sleep(for: .milliseconds(100 * tries))
                tries += 1
            }
        }
    }

    /// The backend's response headers, or its refusal.
    func headers() async throws -> Metadata {
        try await withTaskCancellationHandler {
            for try await headers in headerStream { return headers }
            throw RPCError(code: .unavailable, message: "the backend closed the call without answering")
        } onCancel: { [task] in
            task.cancel()
        }
    }

    /// Writes the backend's messages to `writer`; returns its trailers or throws its status.
    func relay(to writer: RPCWriter<[UInt8]>) async throws -> Metadata {
        try await withTaskCancellationHandler {
            for try await part in parts {
                switch part {
                case .message(let message): try await writer.write(message)
                case .trailingMetadata(let trailers): return ForwardedMetadata.filter(trailers)
                }
            }
            return [:]
        } onCancel: { [task] in
            task.cancel()
        }
    }

    /// The backend's messages, as they come (its status, if not OK, thrown at the end).
    func stream() -> AsyncThrowingMapSequence<
        AsyncThrowingFilterSequence<AsyncThrowingStream<StreamingClientResponse<[UInt8]>.Contents.BodyPart, any Error>>, [UInt8]
    > {
        parts.filter { if case .message = $0 { true } else { false } }
            .map { if case .message(let bytes) = $0 { bytes } else { [] } }
    }

    /// All of the backend's messages (for a unary answer).
    func messages() async throws -> [[UInt8]] {
        try await withTaskCancellationHandler {
            var all: [[UInt8]] = []
            for try await message in stream() { all.append(message) }
            return all
        } onCancel: { [task] in
            task.cancel()
        }
    }

    /// The backend's status as it sent it, minus the headers of its response frame (`:status` and
    /// `content-type` come with a trailers-only answer and may not be sent back as trailers).
    static func relayable(_ error: any Error) -> any Error {
        guard let error = error as? RPCError else { return error }
        return RPCError(code: error.code, message: error.message, metadata: ForwardedMetadata.filter(error.metadata))
    }
}
