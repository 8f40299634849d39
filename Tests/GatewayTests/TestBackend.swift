import KangyiPlatform
import KangyiTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import NIOPosix
import Testing

@testable import KangyiGateway

/// A listener that records the connections it accepts; `http2` answers as an HTTP/2 server would
/// (PINGs included), otherwise it never says a word.
final class TestBackend: Sendable {
    let accepted = NIOLockedValueBox<[any Channel]>([])
    let listener: any Channel

    init(http2: Bool) async throws {
        let accepted = self.accepted
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0.append(channel) }
                guard http2 else { return channel.eventLoop.makeSucceededVoidFuture() }
                return channel.eventLoop.makeCompletedFuture {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.close()
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var address: String { "127.0.0.1:\(listener.localAddress!.port!)" }
    var connections: [any Channel] { accepted.withLockedValue { $0 } }

    /// Waits up to `seconds` for `condition`.
    func waitFor(seconds: Double, _ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<Int(seconds * 20) where !condition() { try await Task.sleep(for: .milliseconds(50)) }
        return condition()
    }
}

/// A backend, and the front door's connections to it pinging every 0.2 s with 1 s to answer (ample on
/// a busy machine: a late answer would close an answering backend's connection), once the first
/// connection is made and the door has it (the backend accepts it a moment before the door's connect
/// completes: `pick()` could still be nil, and a test crashed unwrapping it).
func withConnectedDoor(
    backendSpeaksHTTP2 http2: Bool, _ body: (TestBackend, BackendConnections) async throws -> Void
) async throws {
    let backend = try await TestBackend(http2: http2)
    let door = BackendConnections(
        address: try PeerAddress(backend.address, of: "backend"), loop: MultiThreadedEventLoopGroup.singleton.next(),
        logger: TestDatabase.logger, metrics: nil, pingInterval: .milliseconds(200), pingTimeout: .seconds(1))
    door.start()
    defer { door.close(); backend.listener.close(promise: nil) }
    #expect(try await backend.waitFor(seconds: 3) { !backend.connections.isEmpty })
    var up = false
    for _ in 0..<60 where !up {
        up = try await door.loop.submit { door.isUp }.get()
        if !up { try await Task.sleep(for: .milliseconds(50)) }
    }
    try #require(up, "the door has its connection")
    try await body(backend, door)
}
