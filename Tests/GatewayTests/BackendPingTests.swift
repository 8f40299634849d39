import NIOCore
import Testing

@testable import KangyiGateway

/// The front door's connections to a backend are pinged (``PingsBackend``): one whose backend has gone
/// silent — accepted, then nothing, as when its host vanished — is closed and made again, and one whose
/// backend answers stays open through many pings.
@Suite struct BackendPingTests {
    @Test func aSilentBackendsConnectionIsClosedAndMadeAgain() async throws {
        try await withConnectedDoor(backendSpeaksHTTP2: false) { backend, _ in
            let first = try #require(backend.connections.first)
            #expect(try await backend.waitFor(seconds: 5) { !first.isActive }, "closed by the door: no answer to its PING")
            #expect(try await backend.waitFor(seconds: 5) { backend.connections.count >= 2 }, "and made again")
        }
    }

    @Test func anAnsweringBackendsConnectionStaysOpen() async throws {
        try await withConnectedDoor(backendSpeaksHTTP2: true) { backend, _ in
            try await Task.sleep(for: .seconds(2))  // ten pings, each answered
            #expect(backend.connections.count == 1)
            #expect(backend.connections.first?.isActive == true)
        }
    }
}
