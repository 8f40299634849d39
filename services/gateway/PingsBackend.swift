import KangyiPlatform
import NIOCore
import NIOHTTP2

/// Pings a backend over the front door's connection to it every `interval`, and closes the connection
/// when an answer takes longer than `timeout` (``BackendConnections`` then connects again). A backend
/// whose host vanished without a word — a node lost, a network cut — sends no FIN or RST: its connection
/// would look open and take calls, each waiting out its deadline, until TCP gave up many minutes later.
/// One PING is outstanding at a time, at the pace the platform's peer clients keep
/// (``PeerClient/keepalive``), which the backends' servers allow.
final class PingsBackend: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    static let interval = TimeAmount(PeerClient.keepalive.interval)
    static let timeout = TimeAmount(PeerClient.keepalive.timeout)

    private let interval: TimeAmount
    private let timeout: TimeAmount
    private var pinger: RepeatedTask?
    private var unanswered: (data: HTTP2PingData, deadline: Scheduled<Void>)?
    private var sent: UInt64 = 0

    init(interval: TimeAmount, timeout: TimeAmount) {
        self.interval = interval
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .ping(let ping, ack: true) = unwrapInboundIn(data).payload, ping == unanswered?.data {
            unanswered?.deadline.cancel()
            unanswered = nil
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { stop() }

    private func start(_ context: ChannelHandlerContext) {
        guard pinger == nil else { return }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        pinger = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            bound.value.handler.ping(bound.value.context)
        }
    }

    private func ping(_ context: ChannelHandlerContext) {
        guard unanswered == nil else { return }
        sent &+= 1
        let data = HTTP2PingData(withInteger: sent)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let deadline = context.eventLoop.scheduleTask(in: timeout) { bound.value.close(promise: nil) }
        unanswered = (data, deadline)
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(data, ack: false))), promise: nil)
    }

    private func stop() {
        pinger?.cancel()
        pinger = nil
        unanswered?.deadline.cancel()
        unanswered = nil
    }
}
