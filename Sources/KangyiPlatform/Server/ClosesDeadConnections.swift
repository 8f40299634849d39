import NIOCore
import NIOHTTP2

/// Closes an HTTP/2 server connection whose peer has stopped taking part, which grpc-swift's connection
/// management (and NIOHTTP2's, in the gateway's front door) means to do but leaves to the peer: on a ping
/// unanswered, and at the connection's maximum age, it sends GOAWAY and a ping, and starts the grace period
/// only once that ping is answered. A peer that never answers — a caller that vanished without a FIN, or one
/// that sent half a preface and stopped — held the connection, and a file descriptor, for good (stop 41:
/// 160 such connections to intake and the gateway were all still open after 7 minutes).
///
/// Between the HTTP/2 handler and the connection manager, so it sees the connection's own frames both ways:
/// - the first GOAWAY the server sends (the manager's, on a ping unanswered, at the maximum age, or at
///   shutdown) → closed `grace` later, whatever the peer does: the grace the manager meant to give;
/// - nothing read for `silence` → closed: a net under the first rule, for a connection the manager never
///   sends GOAWAY on. ``init(limits:)`` makes it the keepalive interval, its timeout and the grace, when the
///   first rule has closed any connection whose peer stopped answering.
/// A slow peer is treated as grpc-swift means to treat it: GOAWAY, and its calls the grace to finish. A
/// read costs one store; the silence is checked by a timer every quarter of it.
public final class ClosesDeadConnections: ChannelDuplexHandler {
    public typealias InboundIn = HTTP2Frame
    public typealias InboundOut = HTTP2Frame
    public typealias OutboundIn = HTTP2Frame
    public typealias OutboundOut = HTTP2Frame

    private let silence: TimeAmount
    private let grace: TimeAmount
    private var heardFrom = true
    /// Checks since the last one that found a read; the fourth closes, between `silence` and 5/4 of it
    /// after the last read.
    private var quietChecks = 0
    private var check: Scheduled<Void>?
    private var graceEnds: Scheduled<Void>?

    public init(silence: Duration, grace: Duration) {
        self.silence = TimeAmount(silence)
        self.grace = TimeAmount(grace)
    }

    /// With a server's limits: the grace is the connection's maximum grace, the silence the keepalive
    /// interval, its timeout and that grace.
    public convenience init(limits: Settings.ServerLimits) {
        self.init(silence: limits.silentConnectionLimit + limits.connectionMaxGrace, grace: limits.connectionMaxGrace)
    }

    /// Into a connection whose HTTP/2 pipeline grpc-swift has made, right after its HTTP/2 handler.
    public static func insert(into connection: any Channel, limits: Settings.ServerLimits) -> EventLoopFuture<Void> {
        connection.eventLoop.makeCompletedFuture {
            let pipeline = connection.pipeline.syncOperations
            try pipeline.addHandler(
                ClosesDeadConnections(limits: limits),
                position: .after(try pipeline.handler(type: NIOHTTP2Handler.self)))
        }
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        scheduleCheck(context)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        graceEnds?.cancel()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        heardFrom = true
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if graceEnds == nil, case .goAway = unwrapOutboundIn(data).payload {
            graceEnds = context.eventLoop.assumeIsolated().scheduleTask(in: grace) { context.close(promise: nil) }
        }
        context.write(data, promise: promise)
    }

    private func scheduleCheck(_ context: ChannelHandlerContext) {
        check = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(silence.nanoseconds / 4)) { [self] in
            if heardFrom {
                heardFrom = false
                quietChecks = 0
            } else {
                quietChecks += 1
            }
            if quietChecks >= 4 {
                context.close(promise: nil)
            } else {
                scheduleCheck(context)
            }
        }
    }
}
