import NIOCore
import NIOEmbedded
import NIOPosix
import NIOHTTP2
import Testing

@testable import KangyiGateway

/// A ``BackendLink`` on which the door has reset its budget of streams is retired — told once — and its
/// connection closes only when the last of its streams has, so the calls still on it are answered. Its
/// ``BackendConnections`` keeps giving it calls until a new connection has taken its place.
@Suite struct BackendLinkTests {
    final class Told {
        var times = 0
        var reason: BackendLink.Retirement?
    }

    @Test func aLinkRetiredForItsResetsClosesWithItsLastStream() throws {
        let channel = EmbeddedChannel()
        let told = Told()
        let link = try BackendLink.attach(to: channel, resetBudget: 3) { reason in
            told.times += 1
            told.reason = reason
        }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let opened = link.createStream { $0.eventLoop.makeSucceededVoidFuture() }
        channel.embeddedEventLoop.run()
        let stream = try opened.wait()

        link.resetSent()
        link.resetSent()
        #expect(!link.retired)
        link.resetSent()
        #expect(link.retired)
        #expect(told.times == 1)
        #expect(told.reason == .resets)
        #expect(channel.isActive, "a stream is still open on it")

        link.resetSent()
        link.retire(because: .goAway)
        #expect(told.times == 1, "retired once")

        stream.close(promise: nil)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func aLinkWithNoStreamClosesAsItRetires() throws {
        let channel = EmbeddedChannel()
        let link = try BackendLink.attach(to: channel, resetBudget: 1) { _ in }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        link.resetSent()
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func aLinkSpentOnResetsTakesCallsUntilItsReplacementIsUp() async throws {
        try await withConnectedDoor(backendSpeaksHTTP2: true) { backend, door in
            let (spent, pickedNext) = try await door.loop.submit {
                let link = door.pick()!
                _ = link.createStream { $0.eventLoop.makeSucceededVoidFuture() }  // a call still on it
                for _ in 0..<ResetBudget.resets { link.resetSent() }
                return (ObjectIdentifier(link), door.pick().map(ObjectIdentifier.init))
            }.get()
            #expect(pickedNext == spent, "no gap: the spent link takes calls while its replacement connects")
            #expect(try await backend.waitFor(seconds: 3) { backend.connections.count >= 2 }, "a second connection")
            var replaced = false
            for _ in 0..<60 where !replaced {
                replaced = try await door.loop.submit { door.pick().map(ObjectIdentifier.init) != spent }.get()
                if !replaced { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(replaced, "calls then take the new connection")
            #expect(backend.connections[0].isActive, "the spent one stays open while a stream is on it")
        }
    }
}
