import Foundation
import GRPCCore
import KangyiPlatform
import KangyiTestSupport
import Testing

@testable import KangyiGateway

/// A revoked token stops speaking for the streams it opened (``OpenStreams``, ``RevocationSweep``): a
/// bidirectional stream through each door — relayed straight to its backend, and through the gateway's
/// server — ends UNAUTHENTICATED `TOKEN_REVOKED` within the sweep's 10 s of the revocation, while the same
/// stream opened with a live token runs on. (The JSON door's: `test_gateway.py`.)
@Suite struct RevocationTests {
    @Test(arguments: GatewayHarness.Door.allCases)
    func aRevokedTokensStreamsEnd(door: GatewayHarness.Door) async throws {
        try await GatewayHarness.run("gw_revoked_\(door)", door: door) { h in
            let (doomed, token) = try await h.tokens.create(
                caller: "revoked", department: "qa", scopes: [GatewayHarness.relayScope], ratePerSecond: 100, burst: 100,
                expiresAt: nil)
            let live = try await h.token("live")
            try await withClient(h.gatewayAddress) { client in
                try await withThrowingTaskGroup(of: (String, RPCError.Code?, Duration).self) { group in
                    let started = ContinuousClock.now
                    for (name, bearerToken) in [("revoked", token), ("live", live)] {
                        group.addTask {
                            let code = await Self.chat(client, token: bearerToken, for: .seconds(25))
                            return (name, code, ContinuousClock.now - started)
                        }
                    }
                    try await Task.sleep(for: .seconds(1))  // both streams open and answered
                    #expect(try await h.tokens.revoke(id: doomed.id))
                    let first = try #require(try await group.next())
                    #expect(first.0 == "revoked" && first.1 == .unauthenticated, "\(first.0) \(String(describing: first.1)) \(first.2)")
                    // Within the sweep's 10 s of the revocation, with slack for a machine running every suite at once.
                    #expect(first.2 < .seconds(20))
                    group.cancelAll()
                }
            }
        }
    }

    /// A chat kept open `duration`, one message a second: how it ended (nil: still open, then cancelled).
    static func chat(_ client: GRPCClient<some ClientTransport>, token: String, for duration: Duration) async -> RPCError.Code? {
        var options = CallOptions.defaults
        options.timeout = duration + .seconds(5)
        do {
            try await client.bidirectionalStreaming(
                request: StreamingClientRequest(metadata: bearer(token)) { writer in
                    let ends = ContinuousClock.now + duration
                    while ContinuousClock.now < ends {
                        try await writer.write(try text("ping"))
                        try await Task.sleep(for: .seconds(1))
                    }
                },
                descriptor: RelayService.chat, serializer: RawBytes(), deserializer: RawBytes(), options: options
            ) { response in
                for try await _ in try response.accepted.get().bodyParts {}
            }
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return nil
        }
    }
}
