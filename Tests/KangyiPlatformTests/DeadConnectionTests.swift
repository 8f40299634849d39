import KangyiPlatform
import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

/// A server connection whose peer stops taking part is closed (``ClosesDeadConnections``); the interop suite
/// tries the silence end to end against the gateway and intake (`test_hostile_http2.py`).
@Suite struct DeadConnectionTests {
    private func connection() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: ClosesDeadConnections(silence: .seconds(8), grace: .seconds(3)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private let ping = HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: 1), ack: true))

    @Test func aPeerHeardFromStaysOpenAndOneSilentForTheWholeSilenceIsClosed() throws {
        let channel = try connection()
        for _ in 0..<10 {  // a frame every 7 s, for 70 s
            channel.embeddedEventLoop.advanceTime(by: .seconds(7))
            try channel.writeInbound(ping)
            #expect(channel.isActive)
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(7))
        #expect(channel.isActive, "7 s of silence is within 8")
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(!channel.isActive, "closed between 8 and 10 s after the last frame")
    }

    @Test func aGoAwayClosesTheConnectionAfterTheGraceWhateverThePeerDoes() throws {
        let channel = try connection()
        try channel.writeOutbound(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil)))
        for _ in 0..<2 {  // still talking, but not answering the GOAWAY's ping
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            try channel.writeInbound(ping)
        }
        // The second GOAWAY does not start the grace again.
        try channel.writeOutbound(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: 1, errorCode: .noError, opaqueData: nil)))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive, "closed 3 s after the first GOAWAY")
    }
}
