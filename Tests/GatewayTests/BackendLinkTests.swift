import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import KangyiGateway

/// A ``BackendLink`` on which the door has reset its budget of streams is retired — told once — and its
/// connection closes only when the last of its streams has, so the calls still on it are answered.
@Suite struct BackendLinkTests {
    final class Told {
        var times = 0
        var reason: BackendLink.Retirement?
    }

    @Test func aLinkRetiredForItsResetsClosesWithItsLastStream() throws {
        let channel = EmbeddedChannel()
        let told = Told()
        let link = BackendLink(channel: channel, resetBudget: 3) { reason in
            told.times += 1
            told.reason = reason
        }
        try link.configure()
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
        let link = BackendLink(channel: channel, resetBudget: 1) { _ in }
        try link.configure()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        link.resetSent()
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }
}
