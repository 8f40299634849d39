import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import SwiftProtobuf
import KangyiAPI
@testable import KangyiPlatform
import KangyiTestSupport
import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

/// The platform's server as services get it: a real HTTP/2 port, the interceptors, error mapping, the
/// access log and metrics, graceful shutdown.
@Suite struct ServerPipelineTests {
    let logs = LogCapture()
    let metrics = RPCMetrics()

    let echo = TestEchoService()

    func makeServer() -> GRPCServerService {
        GRPCServerService(
            name: "echo", services: [echo], host: "127.0.0.1", port: 0, limits: .defaults,
            metrics: metrics, logger: logs.logger(), identity: RequestContextInterceptor(key: TestIdentity.key))
    }

    func withEcho(_ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
        let server = makeServer()
        try await withServiceGroup([server]) { _ in
            let address = try await server.listeningAddress()
            try await withClient(address) { client in try await body(client) }
        }
    }

    @Test func echoesTheCallersRequestIDAndMintsOneWhenMissing() async throws {
        try await withEcho { client in
            let (body, metadata) = try await client.say("hi", metadata: ["x-request-id": "req-42"])
            #expect(body == "anonymous|req-42")
            #expect(Array(metadata[stringValues: "x-request-id"]) == ["req-42"])

            let (minted, mintedMetadata) = try await client.say("hi")
            let id = String(minted.split(separator: "|")[1])
            #expect(id.count == 32)
            #expect(Array(mintedMetadata[stringValues: "x-request-id"]) == [id])
        }
    }

    @Test func callerIdentityComesFromSignedGatewayMetadata() async throws {
        try await withEcho { client in
            let (body, _) = try await client.say(
                "hi", metadata: staff("health-commission", scopes: ["intake.read", "pii.read"]))
            #expect(body.hasPrefix("health-commission|"))
        }
    }

    /// Identity headers that do not verify are refused, whoever sends them; health stays open.
    @Test func unsignedForgedExpiredOrMisdirectedIdentitiesAreUnauthenticated() async throws {
        let claim = CallerIdentity(requestID: "req-x", caller: "mallory", scopes: [Scope.personalData])
        var unsigned: Metadata = ["x-kangyi-caller": "mallory", "x-kangyi-scopes": "pii.read"]
        unsigned.addString("req-x", forKey: "x-request-id")
        let forgedHeaders = unsigned
        var tampered = TestIdentity.metadata(claim, for: TestEchoService.say)
        tampered.replaceOrAddString("pii.read admin", forKey: CallerIdentity.scopesKey)
        var repeated = TestIdentity.metadata(claim, for: TestEchoService.say)
        repeated.addString("mallory", forKey: CallerIdentity.callerKey)
        let malformed = ["v1.12.abc.d", "v2.12.abc", "v1..abc", "v1.1e3.abc", "v1.12.+/+"].map { token in
            var metadata = TestIdentity.metadata(claim, for: TestEchoService.say)
            metadata.replaceOrAddString(token, forKey: SignedIdentity.signatureKey)
            return ("malformed \(token)", metadata, "MALFORMED_IDENTITY")
        }
        let cases: [(String, Metadata, String)] = [
            ("unsigned", forgedHeaders, "UNSIGNED_IDENTITY"),
            ("another key", TestIdentity.metadata(claim, for: TestEchoService.say, key: .random()), "FORGED_IDENTITY"),
            ("tampered scopes", tampered, "FORGED_IDENTITY"),
            ("a claim twice", repeated, "FORGED_IDENTITY"),
            ("another method", TestIdentity.metadata(claim, for: TestEchoService.count), "FORGED_IDENTITY"),
            ("expired", TestIdentity.metadata(claim, for: TestEchoService.say, now: Date().addingTimeInterval(-600)), "EXPIRED_IDENTITY"),
        ] + malformed
        try await withEcho { client in
            for (label, metadata, reason) in cases {
                let error = await #expect(throws: RPCError.self, "\(label)") { try await client.say("hi", metadata: metadata) }
                #expect(error?.code == .unauthenticated, "\(label)")
                let info = try error?.unpackGoogleRPCStatus()?.details.compactMap(\.errorInfo).first
                #expect(info?.reason == reason, "\(label)")
            }
            // Without any claim the call is anonymous, not refused.
            #expect(try await client.say("hi").0.hasPrefix("anonymous|"))
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            // Answered (NOT_SERVING: no database probe runs here), not refused.
            let status = try await health.check(.with { $0.service = "" }, metadata: forgedHeaders)
            #expect(status.status == .notServing)
        }
        let refused = logs.all.filter { $0.message == "rpc" && $0.metadata["code"] == "unauthenticated" }
        #expect(refused.count == cases.count, "refusals are logged like any call")

        // Header names compare as gRPC compares them, in any case (an in-process call keeps the caller's).
        var shouted = Metadata()
        for (name, value) in TestIdentity.metadata(claim, for: TestEchoService.say) {
            shouted.addString(value.description, forKey: name.uppercased())
        }
        let verified = SignedIdentity.verify(shouted, method: TestEchoService.say.fullyQualifiedMethod, key: TestIdentity.key)
        #expect(verified.caller == "mallory" && verified.requestID == "req-x" && verified.refusal == nil)
        shouted.addString("MALLORY", forKey: "X-KANGYI-CALLER")
        #expect(SignedIdentity.verify(shouted, method: TestEchoService.say.fullyQualifiedMethod, key: TestIdentity.key).refusal?.reason == "FORGED_IDENTITY")
    }

    func staff(_ caller: String, scopes: Set<String> = [], method: MethodDescriptor = TestEchoService.say, requestID: String = "req-s") -> Metadata {
        TestIdentity.metadata(CallerIdentity(requestID: requestID, caller: caller, scopes: scopes), for: method)
    }

    @Test func invalidInputBecomesInvalidArgumentWithFieldViolations() async throws {
        try await withEcho { client in
            do {
                _ = try await client.say("invalid")
                Issue.record("expected INVALID_ARGUMENT")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument)
                let status = try #require(try error.unpackGoogleRPCStatus())
                #expect(status.code == .invalidArgument)
                let info = try #require(status.details.compactMap(\.errorInfo).first)
                #expect(info.reason == "INVALID_VALUE")
                #expect(info.domain == "kangyi.test.v1.Echo")
                let violation = try #require(status.details.compactMap(\.badRequest).first?.violations.first)
                #expect(violation.field == "value")
                #expect(violation.violationDescription.contains("must not be"))
                #expect(Array(error.metadata[stringValues: "x-request-id"]).count == 1)
            }
            await #expect { try await client.say("missing") } throws: { ($0 as? RPCError)?.code == .notFound }
        }
    }

    /// A request wrong in a thousand places still gets an answer every client can read: the first
    /// violations named, the rest counted, the trailers well under grpcio's 8 KiB (and the 16 KiB beyond
    /// which the gateway's HTTP/2 refuses them).
    @Test func aThousandViolationsAnswerWithinWhatClientsAccept() throws {
        let occupants = (0..<1_000).map {
            ServiceError.FieldViolation(
                field: "logs[\($0)].occupants[0].temperature_decicelsius", reason: "INVALID_TEMPERATURE",
                description: "between 300 and 450 (30.0–45.0 °C), e.g. 豫A12345 " + String(repeating: "x", count: $0 == 0 ? 2_000 : 60))
        }
        for violations in [occupants, Array(occupants.dropFirst())] {
            let error = ErrorMappingInterceptor.rpcError(
                for: ServiceError.invalidArgument(violations), domain: "kangyi.test.v1.Echo", logger: logs.logger())
            #expect(error.code == .invalidArgument)
            let trailerBytes = error.message.utf8.count * 3 + error.metadata.reduce(0) { size, entry in
                switch entry.value {
                case .string(let text): size + entry.key.utf8.count + text.utf8.count
                case .binary(let bytes): size + entry.key.utf8.count + (bytes.count + 2) / 3 * 4
                }
            }
            #expect(trailerBytes < 8 * 1024, "\(trailerBytes) bytes of trailers")
            let status = try #require(try error.unpackGoogleRPCStatus())
            let named = try #require(status.details.compactMap(\.badRequest).first).violations
            #expect(named.count >= 1 && named.count <= ServiceError.namedViolationsLimit)
            #expect(named.first?.field == violations.first?.field)
            #expect(error.message.hasSuffix("; and \(violations.count - named.count) more"))
            #expect(status.details.compactMap(\.errorInfo).first?.metadata["violations"] == "\(violations.count)")
        }
        // A few violations are all named, with no count.
        let few = ServiceError.invalidArgument(Array(occupants.dropFirst().prefix(3)))
        #expect(few.violations.count == 3 && few.metadata["violations"] == nil && !few.message.contains("more"))
    }

    /// A `grpc-timeout` that is not one to eight digits and a unit never reaches grpc-swift, which stops
    /// the process on a negative one; the first well-formed one moves to where the platform times the
    /// call, and a caller's own header of that name is dropped. The bare server keeps grpc-swift's way.
    @Test func headersGRPCSwiftMustNotSeeAreMendedOrAnswered() throws {
        for good in ["1S", "0n", "99999999H", "250m"] {
            #expect(GRPCTimeout.isWellFormed(good), "\(good)")
        }
        for bad in ["-5S", "+5S", "5", "S", "5s", "1 S", "123456789S", "٣S", ""] {
            #expect(!GRPCTimeout.isWellFormed(bad), "\(bad)")
            #expect(GRPCTimeout.decode(bad) == nil, "\(bad)")
        }
        func passed(_ headers: HPACKHeaders, movesTimeouts: Bool = true) throws -> HPACKHeaders? {
            let channel = EmbeddedChannel(handler: RequestHeaderGuard(movesTimeouts: movesTimeouts))
            try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
            guard case .headers(let frame)? = try channel.readInbound(as: HTTP2Frame.FramePayload.self) else { return nil }
            return frame.headers
        }
        let path: (String, String) = (":path", "/kangyi.test.v1.Echo/Say")
        let cleaned = try passed(HPACKHeaders([path, ("grpc-timeout", "-5S"), ("grpc-timeout", "2S"), ("grpc-timeout", "3S")]))
        #expect(cleaned?["grpc-timeout"] == [])
        #expect(cleaned?[GRPCTimeout.receivedKey] == ["2S"])
        #expect(cleaned?[":path"] == ["/kangyi.test.v1.Echo/Say"])
        let forged = try passed(HPACKHeaders([path, (GRPCTimeout.receivedKey, "1n")]))
        #expect(forged?[GRPCTimeout.receivedKey] == [] && forged?[":path"] == ["/kangyi.test.v1.Echo/Say"])
        let bare = try passed(HPACKHeaders([path, ("grpc-timeout", "-5S"), ("grpc-timeout", "5S")]), movesTimeouts: false)
        #expect(bare?["grpc-timeout"] == ["5S"] && bare?[GRPCTimeout.receivedKey] == [])
        var headers = HPACKHeaders([path])

        // Two algorithms (grpc-swift would answer INTERNAL) are answered UNIMPLEMENTED, and the call goes
        // no further.
        let refusing = EmbeddedChannel(handler: RequestHeaderGuard())
        headers = HPACKHeaders([(":path", "/kangyi.test.v1.Echo/Say"), ("grpc-encoding", "gzip, identity")])
        try refusing.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
        try refusing.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: [0, 0, 0, 0, 0])))))
        #expect(try refusing.readInbound(as: HTTP2Frame.FramePayload.self) == nil)
        guard case .headers(let answer)? = try refusing.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("no answer")
            return
        }
        #expect(answer.endStream && answer.headers["grpc-status"] == ["12"])
    }

    /// The server ends a call at the deadline its caller sent, though grpc-swift never sees the header
    /// (the guard moves it): the handler's RPC is cancelled there, and what listens to that — the group
    /// committer, here a handler waiting on it — answers. The caller below never gives up on its own.
    @Test func theServerEndsACallAtItsDeadline() async throws {
        try await withEcho { client in
            let started = ContinuousClock.now
            let answer = try await client.waitForCancellation(metadata: ["grpc-timeout": "300m"])
            let took = ContinuousClock.now - started
            #expect(answer.hasPrefix("cancelled after"), "\(answer)")
            #expect(took >= .milliseconds(300) && took < .seconds(5), "\(took)")
            // It knew its deadline, and the timer went with the call: a call without one is not cancelled.
            #expect(answer.contains("deadline set"), "\(answer)")
            let quick = try await client.waitForCancellation(metadata: [:], patience: .milliseconds(400))
            #expect(quick == "not cancelled, no deadline", "\(quick)")
        }
    }

    /// A server that cannot listen says why: grpc-swift tells whoever waits for its address only that it
    /// stopped, so the reason (here, its port in use) is in the log and in what it throws.
    @Test func aServerWhosePortIsTakenSaysWhy() async throws {
        let first = makeServer()
        try await withServiceGroup([first]) { _ in
            let port = Int(try await first.listeningAddress().split(separator: ":").last!)!
            let second = GRPCServerService(
                name: "second", services: [echo], host: "127.0.0.1", port: port, limits: .defaults,
                metrics: metrics, logger: logs.logger())
            await #expect(throws: (any Error).self) { try await second.run() }
            let said = logs.all.filter { $0.level == .error && $0.message == "server could not serve" }
            #expect(said.count == 1 && said.first?.metadata["server"] == "second", "\(said.map(\.text))")
            #expect(said.first?.metadata["error"]?.contains("in use") == true, "\(said.map(\.text))")
        }
    }

    /// A server cancelled (the drain over, or a sibling failed) throws the cancellation, but logs no fault.
    @Test func aCancelledServerLogsNoFault() async throws {
        let server = makeServer()
        let serving = Task { try await server.run() }
        _ = try await server.listeningAddress()
        serving.cancel()
        _ = await serving.result
        #expect(logs.all.filter { $0.message == "server could not serve" }.isEmpty)
    }

    /// Ports for servers that bind them later come from below the kernel's ephemeral range, where no
    /// outgoing connection takes one meanwhile.
    @Test func freePortsLieBelowTheEphemeralRange() throws {
        for _ in 0..<20 {
            let port = try FreePort.find()
            #expect(port >= FreePort.lowest && port < FreePort.ephemeralRangeStart() && FreePort.isFree(port), "\(port)")
        }
    }

    @Test func unexpectedErrorsAreInternalWithTheDetailOnlyInTheLog() async throws {
        try await withEcho { client in
            do {
                _ = try await client.say("boom", metadata: ["x-request-id": "req-boom"])
                Issue.record("expected INTERNAL")
            } catch let error as RPCError {
                #expect(error.code == .internalError)
                #expect(error.message.contains("req-boom"))
                #expect(!error.message.contains("13800138000"))
            }
        }
        let errors = logs.all.filter { $0.level == .error }
        #expect(errors.count == 1)
        #expect(errors.first?.metadata["request_id"] == "req-boom")
        // The error's own description quoted a phone number: not even the log repeats it.
        #expect(!logs.all.contains { $0.text.contains("13800138000") })
    }

    @Test func aWriteToAStreamTheCallerResetIsACancelNotAFault() {
        let error = ErrorMappingInterceptor.rpcError(
            for: NIOHTTP2Errors.streamClosed(streamID: HTTP2StreamID(1), errorCode: .cancel), domain: "test",
            logger: logs.logger())
        #expect(error.code == .cancelled)
        #expect(logs.all.filter { $0.level >= .warning }.isEmpty)
    }

    @Test func grpcSwiftsInternalForAMalformedRequestIsTheCallersInvalidArgument() {
        for message in ["Empty stream.", "Too many messages.", "Failed to decode message"] {
            let error = ErrorMappingInterceptor.rpcError(
                for: RPCError(code: .internalError, message: message), domain: "test", logger: logs.logger())
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("request: "))
        }
        let other = ErrorMappingInterceptor.rpcError(
            for: RPCError(code: .internalError, message: "something else"), domain: "test", logger: logs.logger())
        #expect(other.code == .internalError && other.message == "something else")
    }

    @Test func oneLogLineAndOneCountPerRPCWithoutMessageContents() async throws {
        try await withEcho { client in
            _ = try await client.say("13912345678", metadata: staff("staff-7", requestID: "req-1"))
            _ = try? await client.say("invalid", metadata: ["x-request-id": "req-2"])
            #expect(try await client.count() == ["1", "2", "3"])
            await #expect(throws: RPCError.self) { try await client.count(metadata: staff("fail-late", method: TestEchoService.count)) }
        }
        let lines = logs.all.filter { $0.message == "rpc" }
        #expect(lines.count == 4)
        let first = try #require(lines.first { $0.metadata["request_id"] == "req-1" })
        #expect(first.metadata["method"] == "kangyi.test.v1.Echo/Say")
        #expect(first.metadata["code"] == "ok")
        #expect(first.metadata["caller"] == "staff-7")
        #expect(Double(first.metadata["duration_ms"] ?? "") != nil)
        #expect(lines.first { $0.metadata["request_id"] == "req-2" }?.metadata["code"] == "invalid_argument")
        // Split up: as one expression the type checker's time limit is reached on a busy machine.
        let countLines = lines.filter { $0.metadata["method"] == "kangyi.test.v1.Echo/Count" }
        let countCodes: [String] = countLines.map { $0.metadata["code"] ?? "" }.sorted()
        #expect(countCodes == ["failed_precondition", "ok"])
        #expect(!logs.all.contains { $0.text.contains("13912345678") })

        let exposition = metrics.exposition()
        #expect(exposition.contains(#"kangyi_rpc_total{method="kangyi.test.v1.Echo/Say",code="ok",caller="staff-7"} 1"#))
        #expect(exposition.contains(#"kangyi_rpc_total{method="kangyi.test.v1.Echo/Say",code="invalid_argument","#))
        #expect(exposition.contains("kangyi_rpc_duration_seconds_bucket"))
    }

    @Test func unknownMethodsAreUnimplemented() async throws {
        try await withEcho { client in
            let missing = MethodDescriptor(fullyQualifiedService: "kangyi.test.v1.Echo", method: "Nope")
            await #expect {
                try await client.unary(
                    request: ClientRequest(message: Google_Protobuf_StringValue()), descriptor: missing,
                    serializer: ProtobufSerializer<Google_Protobuf_StringValue>(),
                    deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(), options: .defaults
                ) { try $0.message }
            } throws: { ($0 as? RPCError)?.code == .unimplemented }
        }
    }

    @Test func gracefulShutdownLetsInFlightRPCsFinish() async throws {
        let server = makeServer()
        let result = try await withServiceGroup([server]) { group in
            let address = try await server.listeningAddress()
            return try await withClient(address) { client in
                async let answer = client.slow(milliseconds: 700)
                while echo.slowStarted.count == 0 { try await Task.sleep(for: .milliseconds(10)) }
                await group.triggerGracefulShutdown()  // as SIGTERM would, with the RPC in flight
                return try await answer
            }
        }
        #expect(result == "done")
    }

    /// A server on an event loop of its own runs its handlers there, before and after they await. Without
    /// one, handlers run on Swift's global pool.
    @Test func aServerOnItsOwnEventLoopRunsItsHandlersThere() async throws {
        let loop = ServiceEventLoop()
        let probe = LoopProbeService(loop: loop.executor.eventLoop)
        let own = GRPCServerService(
            name: "probe", services: [probe], host: "127.0.0.1", port: 0, limits: .defaults, metrics: metrics,
            logger: logs.logger(), eventLoop: loop)
        let shared = GRPCServerService(
            name: "probe", services: [probe], host: "127.0.0.1", port: 0, limits: .defaults, metrics: metrics,
            logger: logs.logger())
        try await withServiceGroup([own, shared]) { _ in
            for (server, expected) in [(own, "on the loop, on the loop"), (shared, "off the loop, off the loop")] {
                let answer = try await withClient(try await server.listeningAddress()) { try await probe.ask($0) }
                #expect(answer == expected)
            }
        }
    }

    @Test func callsBeyondTheInFlightLimitAreRefusedAtOnce() async throws {
        var limits = Settings.ServerLimits.defaults
        limits.maxInFlight = 1
        let server = GRPCServerService(
            name: "echo", services: [echo], host: "127.0.0.1", port: 0, limits: limits, metrics: metrics,
            logger: logs.logger())
        try await withServiceGroup([server]) { _ in
            try await withClient(try await server.listeningAddress()) { client in
                async let slow = client.slow(milliseconds: 1500)
                while echo.slowStarted.count == 0 { try await Task.sleep(for: .milliseconds(10)) }
                // Refused while the slow call still holds the only slot: not queued behind it. From its
                // headers (``ShedsAtCapacity``), with the interceptor's answer: the reason and a retry hint.
                let refused = await #expect(throws: RPCError.self) { try await client.say("hello") }
                #expect(refused?.code == .resourceExhausted)
                #expect(refused?.message == "the server has 1 calls in flight; retry shortly")
                let status = try refused?.unpackGoogleRPCStatus()
                let info = status?.details.compactMap(\.errorInfo).first
                #expect(info?.reason == "SERVER_AT_CAPACITY")
                #expect(info?.domain == "kangyi.test.v1.Echo")
                #expect(status?.details.compactMap(\.retryInfo).first?.delay == .seconds(1))
                #expect(metrics.exposition().contains(#"code="resource_exhausted",caller="unchecked""#))
                // A health check is answered all the same (Kubernetes' probes: a replica at capacity is
                // not taken out of service for it).
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                #expect(try await health.check(.with { $0.service = "" }).status == .notServing)
                #expect(try await slow == "done")
                // The slot is free again.
                #expect(try await client.say("hello").0.contains("|"))
            }
        }
    }
}

/// A writer that keeps nothing.
private struct Discard: RPCWriterProtocol {
    func write(_ element: String) async throws {}
    func write(contentsOf elements: some Sequence<String>) async throws {}
}

/// A call whose response grpc-swift never produces (the caller closed the stream before its headers
/// could be written) still gives its in-flight slot back, and is still logged and counted.
@Suite struct UnproducedResponseTests {
    func respond(_ interceptor: some ServerInterceptor) async throws -> StreamingServerResponse<String> {
        try await interceptor.intercept(
            request: StreamingServerRequest<String>(metadata: [:], messages: RPCAsyncSequence(wrapping: AsyncThrowingStream { $0.finish() })),
            context: .testing
        ) { _, _ in
            StreamingServerResponse(single: ServerResponse(message: "answer"))
        }
    }

    @Test func aResponseDroppedUnproducedGivesItsSlotBack() async throws {
        let shedding = LoadSheddingInterceptor(limit: 1)
        for _ in 0..<3 {
            // Taken, then dropped without its producer ever running.
            _ = try await respond(shedding)
            #expect(shedding.inFlight.current == 0)
        }
    }

    @Test func aSlotIsHeldUntilTheResponseIsProducedAndGivenBackOnce() async throws {
        let shedding = LoadSheddingInterceptor(limit: 1)
        let held = try await respond(shedding)
        #expect(shedding.inFlight.current == 1)
        let refused = await #expect(throws: ServiceError.self) { _ = try await respond(shedding) }  // over the limit
        #expect(refused?.code == .resourceExhausted)
        let contents = try held.accepted.get()
        _ = try await contents.producer(RPCWriter(wrapping: Discard()))
        #expect(shedding.inFlight.current == 0)
        _ = consume held  // dropping it after the producer ran gives nothing back twice
        #expect(shedding.inFlight.current == 0)
    }

    @Test func aCallWhoseAnswerWasNeverProducedIsLoggedAndCountedAsCancelled() async throws {
        let logs = LogCapture()
        let metrics = RPCMetrics()
        let observer = CallObserverInterceptor(logger: logs.logger(), metrics: metrics)
        _ = try await respond(observer)
        let produced = try await respond(observer)
        _ = try await produced.accepted.get().producer(RPCWriter(wrapping: Discard()))
        _ = consume produced
        let codes = logs.all.filter { $0.message == "rpc" }.map { $0.metadata["code"] ?? "" }.sorted()
        #expect(codes == ["cancelled", "ok"])
        #expect(metrics.exposition().contains(#"code="cancelled""#))
    }
}

/// Answers where its handler ran — on `loop` or off it — when it started and after it awaited.
struct LoopProbeService: RegistrableRPCService {
    let loop: any EventLoop
    static let whereAmI = MethodDescriptor(fullyQualifiedService: "kangyi.test.v1.Probe", method: "Where")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.whereAmI, deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(),
            serializer: ProtobufSerializer<Google_Protobuf_StringValue>()
        ) { [loop] request, _ in
            let started = loop.inEventLoop
            _ = try await ServerRequest(stream: request).message
            try await Task.sleep(for: .milliseconds(1))
            let resumed = loop.inEventLoop
            let answer = [started, resumed].map { $0 ? "on the loop" : "off the loop" }.joined(separator: ", ")
            return StreamingServerResponse(single: ServerResponse(message: .with { $0.value = answer }))
        }
    }

    func ask(_ client: GRPCClient<HTTP2ClientTransport.Posix>) async throws -> String {
        try await client.unary(
            request: ClientRequest(message: Google_Protobuf_StringValue()), descriptor: Self.whereAmI,
            serializer: ProtobufSerializer<Google_Protobuf_StringValue>(),
            deserializer: ProtobufDeserializer<Google_Protobuf_StringValue>(), options: .defaults
        ) { try $0.message.value }
    }
}
