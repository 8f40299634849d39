import KangyiPlatform
import KangyiTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import KangyiGateway

/// A call for a backend whose connections are all full waits for room
/// (``BackendConnections/whenRoom(within:_:)``) rather than being refused: a connection is made beside
/// the full ones and takes it. A backend with no connection up is not waited for.
@Suite struct BackendRoomTests {
    @Test func aCallBeyondTheConnectionsRoomWaitsForTheNextConnection() async throws {
        try await withConnectedDoor(backendSpeaksHTTP2: true) { backend, door in
            let answer = NIOLockedValueBox<(given: Bool, link: ObjectIdentifier?)>((false, nil))
            let first = try await door.loop.submit {
                let link = door.pick()!
                for _ in 0..<BackendLink.streamsPerLink {
                    _ = link.createStream { $0.eventLoop.makeSucceededVoidFuture() }  // calls still on it
                }
                door.whenRoom(within: .seconds(10)) { link in
                    answer.withLockedValue { $0 = (true, link.map(ObjectIdentifier.init)) }
                }
                return ObjectIdentifier(link)
            }.get()
            #expect(try await backend.waitFor(seconds: 5) { answer.withLockedValue { $0.given } }, "answered")
            let given = answer.withLockedValue { $0.link }
            let link = try #require(given, "with a connection, not refused")
            #expect(link != first, "the new one: the first is full")
            // The backend records it once its own loop has accepted it, which may come after the door's
            // connect has completed (a CI run saw 1 here).
            #expect(try await backend.waitFor(seconds: 5) { backend.connections.count == 2 }, "a second connection")
        }
    }

    @Test func aBackendWithNoConnectionUpIsNotWaitedFor() async throws {
        let nobody = try ReservedPort()
        let door = BackendConnections(
            address: try PeerAddress(nobody.address, of: "backend"), loop: MultiThreadedEventLoopGroup.singleton.next(),
            logger: TestDatabase.logger, metrics: nil)
        door.start()
        defer { door.close() }
        let answer = try await door.loop.submit {
            let answer = NIOLockedValueBox<Bool?>(nil)
            door.whenRoom(within: .seconds(10)) { link in answer.withLockedValue { $0 = link != nil } }
            return answer.withLockedValue { $0 }
        }.get()
        #expect(answer == false, "nil at once: the call goes the gateway's retrying way")
    }
}
