import Foundation
import GRPCCore
import GRPCProtobuf
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import Testing

@testable import KangyiGateway

/// The gateway over real HTTP/2: forwarding of every RPC kind, identity and metadata, deadlines, a
/// backend that is down, the auth and scope matrix, and rate limits.
@Suite struct GatewayTests {
    @Test(arguments: GatewayHarness.Door.allCases) func forwardsEveryKindOfRPCWithoutDecoding(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_kinds_\(door)", door: door) { h in
            let token = try await h.token()
            // Twice: the second time with the token in the gateway's cache.
            for _ in 0..<2 {
                try await withClient(h.gatewayAddress) { client in
                // Unary.
                let (echoed, headers) = try await client.relayEcho("hi", metadata: bearer(token))
                #expect(echoed.hasPrefix("value=hi|"))
                #expect(headers[stringValues: "x-backend-header"].first(where: { _ in true }) == "hello")
                // Server streaming, with the backend's trailers.
                let split = try await client.raw(RelayService.split, [try text("a,b,c")], metadata: bearer(token))
                #expect(try split.messages.map(value) == ["a", "b", "c"])
                #expect(split.trailers[stringValues: "x-backend-trailer"].first(where: { _ in true }) == "split-done")
                // Client streaming.
                let joined = try await client.raw(RelayService.join, [try text("x"), try text("y"), try text("z")], metadata: bearer(token))
                #expect(try joined.messages.map(value) == ["x+y+z"])
                // Bidirectional.
                let chat = try await client.raw(RelayService.chat, [try text("1"), try text("2")], metadata: bearer(token))
                #expect(try chat.messages.map(value) == ["echo:1", "echo:2"])
                // Bytes that are not a valid message pass through untouched: the backend is the one to refuse them.
                let garbage = await #expect(throws: RPCError.self) {
                    try await client.raw(RelayService.echo, [[0xff, 0xff, 0xff]], metadata: bearer(token))
                }
                #expect(garbage?.code == .internalError || garbage?.code == .invalidArgument)
                }
            }
            if door == .front { #expect(h.directCalls == 10) }
        }
    }

    @Test(arguments: GatewayHarness.Door.allCases) func backendsLearnTheCallerFromTheTokenNeverFromTheCaller(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_identity_\(door)", door: door) { h in
            let token = try await h.token("staff-7", department: "hotline", scopes: [GatewayHarness.relayScope])
            for _ in 0..<2 {
                try await withClient(h.gatewayAddress) { client in
                var metadata = bearer(token)
                metadata.addString("mallory", forKey: CallerIdentity.callerKey)
                metadata.addString("police", forKey: CallerIdentity.departmentKey)
                metadata.addString("pii.read", forKey: CallerIdentity.scopesKey)
                metadata.addString("mine", forKey: "x-custom")
                metadata.addString("req-42", forKey: CallerIdentity.requestIDKey)
                let (seen, headers) = try await client.relayEcho("who", metadata: metadata)
                let fields = Dictionary(uniqueKeysWithValues: seen.split(separator: "|").map {
                    let pair = $0.split(separator: "=", maxSplits: 1)
                    return (String(pair[0]), pair.count > 1 ? String(pair[1]) : "")
                })
                #expect(fields["caller"] == "staff-7")
                #expect(fields["department"] == "hotline")
                #expect(fields["scopes"] == GatewayHarness.relayScope)
                #expect(fields["x-custom"] == "mine")
                #expect(fields["authorization"] == "", "the bearer token never reaches a backend")
                #expect(fields["request-id"] == "req-42")
                #expect(headers[stringValues: CallerIdentity.requestIDKey].first(where: { _ in true }) == "req-42")
                }
            }
            // The first call too: the door looks a token it does not know up before it decides.
            if door == .front { #expect(h.directCalls == 2) }
        }
    }

    @Test(arguments: GatewayHarness.Door.allCases) func statusTrailersAndDeadlinesComeThrough(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_status_\(door)", door: door) { h in
            let token = try await h.token()
            for _ in 0..<2 {
                try await withClient(h.gatewayAddress) { client in
                let failed = await #expect(throws: RPCError.self) {
                    try await client.raw(RelayService.fail, [try text("")], metadata: bearer(token))
                }
                #expect(failed?.code == .failedPrecondition)
                #expect(failed?.message == "the relay refuses")
                #expect(failed?.metadata[stringValues: "x-backend-trailer"].first(where: { _ in true }) == "kept")
                #expect(failed?.metadata[binaryValues: "grpc-status-details-bin"].first(where: { _ in true }) == [1, 2, 3])

                // The caller's deadline is the backend's: the backend is told what remains of it ...
                let (seen, _) = try await client.relayEcho("deadline", metadata: bearer(token), timeout: .seconds(5))
                let header = seen.split(separator: "|").first { $0.hasPrefix("deadline=") }.map { String($0.dropFirst(9)) }
                let remaining = try #require(GRPCTimeout.decode(header))
                #expect(remaining > .zero && remaining <= .seconds(5))
                // ... and a call that outlives it ends with DEADLINE_EXCEEDED.
                let late = await #expect(throws: RPCError.self) {
                    try await client.raw(RelayService.slow, [try text("")], metadata: bearer(token), timeout: .milliseconds(300))
                }
                #expect(late?.code == .deadlineExceeded)
                }
            }
            if door == .front { #expect(h.directCalls == 6) }
        }
    }

    @Test(arguments: GatewayHarness.Door.allCases) func aBackendThatIsDownIsUnavailableQuickly(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_down_\(door)", door: door) { h in
            let token = try await h.token(scopes: [Scopes.intakeSubmit])
            try await withClient(h.gatewayAddress) { client in
                // UNAVAILABLE, not DEADLINE_EXCEEDED: the gateway did not wait for the 20 s deadline.
                let down = await #expect(throws: RPCError.self) {
                    try await client.raw(
                        MethodDescriptor(fullyQualifiedService: "kangyi.intake.v1.IntakeService", method: "ListCategories"), [[]],
                        metadata: bearer(token), timeout: .seconds(20))
                }
                #expect(down?.code == .unavailable)
            }
        }
    }

    /// A backend's answer the gateway cannot decode (trailers beyond the header list it accepts) fails that
    /// call only: the connection it came on is replaced, and the calls after it are answered as before.
    /// (The front door once kept that connection, its header decoder out of step: every later call to the
    /// backend hung, then read another call's trailers.)
    @Test(arguments: GatewayHarness.Door.allCases) func anUndecodableAnswerDoesNotPoisonTheBackendConnection(
        door: GatewayHarness.Door
    ) async throws {
        try await GatewayHarness.run("gw_undecodable_\(door)", door: door) { h in
            let token = try await h.token()
            try await withClient(h.gatewayAddress) { client in
                for round in 0..<3 {
                    let broken = await #expect(throws: RPCError.self) {
                        try await client.raw(RelayService.oversized, [try text("")], metadata: bearer(token), timeout: .seconds(5))
                    }
                    #expect(broken?.code != .deadlineExceeded, "round \(round): the call hung")
                    #expect(broken?.code != .internalError, "round \(round)")
                    // The gateway's own server reaches the backend with grpc-swift's client, which waits out
                    // a short reconnect backoff after closing that connection: UNAVAILABLE meanwhile, not a hang.
                    let backoffEnds = ContinuousClock.now + .seconds(2)
                    var answered = 0
                    while answered < 3 {
                        do {
                            let (seen, _) = try await client.relayEcho("after \(round)", metadata: bearer(token), timeout: .seconds(5))
                            #expect(seen.hasPrefix("value=after \(round)|"))
                            answered += 1
                        } catch let error as RPCError where door == .server && answered == 0 && error.code == .unavailable
                            && ContinuousClock.now < backoffEnds
                        {
                            try await Task.sleep(for: .milliseconds(50))
                        }
                    }
                    let failed = await #expect(throws: RPCError.self) {
                        try await client.raw(RelayService.fail, [try text("")], metadata: bearer(token), timeout: .seconds(5))
                    }
                    #expect(failed?.code == .failedPrecondition)
                    #expect(failed?.message == "the relay refuses")
                }
            }
        }
    }

    /// A caller's headers beyond ``ForwardedMetadata/callerHeaderLimit`` are refused by the gateway: passed on
    /// with the identity it adds they would pass a backend's 16 KiB, and the backend would close the
    /// connection they came on with every other caller's calls on it. (One caller's 15.7 KiB of headers
    /// once ended every call in flight to intake.)
    @Test(arguments: GatewayHarness.Door.allCases) func headersTooLargeToPassOnAreRefusedAndOtherCallsGoOn(
        door: GatewayHarness.Door
    ) async throws {
        try await GatewayHarness.run("gw_headers_\(door)", door: door) { h in
            let token = try await h.token()
            let (answered, heardFirst) = AsyncStream<Void>.makeStream()
            let (attacked, attackOver) = AsyncStream<Void>.makeStream()
            try await withClient(h.gatewayAddress) { victim in
                try await withClient(h.gatewayAddress) { attacker in
                    // Another caller's stream to the same backend, open across the refusals ...
                    async let streamed: [String] = victim.bidirectionalStreaming(
                        request: StreamingClientRequest(metadata: bearer(token)) { writer in
                            try await writer.write(try text("before"))
                            for await _ in attacked { break }
                            try await writer.write(try text("after"))
                        },
                        descriptor: RelayService.chat, serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
                    ) { response in
                        var heard: [String] = []
                        for try await part in try response.accepted.get().bodyParts {
                            guard case .message(let bytes) = part else { continue }
                            heard.append(try value(bytes))
                            heardFirst.yield()
                        }
                        return heard
                    }
                    for await _ in answered { break }
                    for pad in [8_500, 15_600] {
                        var metadata = bearer(token)
                        metadata.addString(String(repeating: "a", count: pad), forKey: "x-pad")
                        let refused = await #expect(throws: RPCError.self) {
                            _ = try await attacker.relayEcho("big", metadata: metadata, timeout: .seconds(5))
                        }
                        #expect(refused?.code == .resourceExhausted, "\(pad)")
                        #expect(refused?.message.contains("headers come to") == true, "\(pad)")
                    }
                    var modest = bearer(token)
                    modest.addString(String(repeating: "a", count: 6_000), forKey: "x-pad")
                    _ = try await attacker.relayEcho("modest", metadata: modest, timeout: .seconds(5))
                    attackOver.yield()
                    // ... is answered to its end.
                    #expect(try await streamed == ["echo:before", "echo:after"])
                }
            }
        }
    }

    /// Every routed method against every kind of caller: admitted (the dead backend then answers
    /// UNAVAILABLE) exactly when the kind's scopes hold the method's scope; else PERMISSION_DENIED.
    @Test(arguments: GatewayHarness.Door.allCases) func everyRoutedMethodAgainstEveryCallerKind(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_matrix_\(door)", door: door) { h in
            let methods = Routes.backends.keys.sorted().flatMap { Routes.methods(of: $0) }
            #expect(methods.count >= 20)
            for method in methods { #expect(Scopes.required[method.fullName] != nil, "\(method.fullName) has no scope") }

            try await withClient(h.gatewayAddress) { client in
                for (kind, scopes) in Scopes.kinds.sorted(by: { $0.key < $1.key }) {
                    let token = try await h.token("kind-\(kind)", scopes: scopes)
                    for method in methods {
                        let expected: RPCError.Code = scopes.contains(Scopes.required[method.fullName]!) ? .unavailable : .permissionDenied
                        let error = await #expect(throws: RPCError.self, "\(kind) → \(method.fullName)") {
                            try await client.raw(method.descriptor, [[]], metadata: bearer(token))
                        }
                        #expect(error?.code == expected, "\(kind) → \(method.fullName)")
                    }
                }
                // No token, a made-up one, an expired one: UNAUTHENTICATED, whatever the method.
                let expired = try await h.token(scopes: Scopes.all, expiresAt: Date().addingTimeInterval(-1))
                for metadata in [Metadata(), bearer("kyt_madeup"), bearer(expired), ["authorization": "Basic abc"]] {
                    let error = await #expect(throws: RPCError.self) {
                        try await client.raw(methods[0].descriptor, [[]], metadata: metadata)
                    }
                    #expect(error?.code == .unauthenticated)
                }
            }
        }
    }

    @Test(arguments: GatewayHarness.Door.allCases) func aRevokedTokenStopsWorking(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_revoke_\(door)", door: door) { h in
            let (holder, token) = try await h.tokens.create(
                caller: "leaver", department: "", scopes: [GatewayHarness.relayScope], ratePerSecond: 10, burst: 10, expiresAt: nil)
            try await withClient(h.gatewayAddress) { client in
                _ = try await client.relayEcho("before", metadata: bearer(token))
                #expect(try await h.tokens.revoke(id: holder.id))
                // Gateways cache answers for up to 10 s.
                let deadline = ContinuousClock.now + .seconds(15)
                var code: RPCError.Code?
                while code == nil, ContinuousClock.now < deadline {
                    do { _ = try await client.relayEcho("after", metadata: bearer(token)) } catch let error as RPCError { code = error.code }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(code == .unauthenticated)
            }
        }
    }

    @Test(arguments: GatewayHarness.Door.allCases) func theRateLimitRefusesWithARetryHint(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_rate_\(door)", door: door) { h in
            // One call per 100 s after a burst of 3: the refill cannot interfere, however slow the machine.
            let token = try await h.token("busy", rate: 0.01, burst: 3)
            try await withClient(h.gatewayAddress) { client in
                var codes: [RPCError.Code?] = []
                var refusal: RPCError?
                for _ in 0..<5 {
                    do {
                        _ = try await client.relayEcho("x", metadata: bearer(token))
                        codes.append(nil)
                    } catch let error as RPCError {
                        codes.append(error.code)
                        refusal = error
                    }
                }
                #expect(codes.prefix(3).allSatisfy { $0 == nil })
                #expect(codes.suffix(2).allSatisfy { $0 == .resourceExhausted })
                let status = try refusal?.unpackGoogleRPCStatus()
                let delay = status?.details.compactMap(\.retryInfo).first?.delay
                #expect(delay != nil && delay! > .seconds(90) && delay! <= .seconds(100))
            }
            // Each call is counted per caller and method, refusals included.
            let text = h.metrics.exposition()
            #expect(text.contains(#"caller="busy""#) && text.contains(#"code="resource_exhausted""#))
        }
    }
}
