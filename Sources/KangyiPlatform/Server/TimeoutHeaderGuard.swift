import NIOCore
import NIOHTTP2

/// Removes a call's `grpc-timeout` headers that are not what the protocol allows (``GRPCTimeout/isWellFormed``)
/// before grpc-swift reads them. grpc-swift 2.4 stops the whole process on a negative one
/// (`Timeout.init(amount:unit:)` preconditions on it): one header from any caller — `grpc-timeout: -5S` —
/// and every call the server had in flight was gone with it. Removed, a malformed timeout is ignored, as
/// grpc-swift ignores the malformed values it does not trap on. First in every stream's pipeline
/// (``GRPCServerService``).
final class TimeoutHeaderGuard: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .headers(var frame) = unwrapInboundIn(data),
            frame.headers["grpc-timeout"].contains(where: { !GRPCTimeout.isWellFormed($0) })
        else { return context.fireChannelRead(data) }
        let kept = frame.headers["grpc-timeout"].filter(GRPCTimeout.isWellFormed)
        frame.headers.remove(name: "grpc-timeout")
        for value in kept { frame.headers.add(name: "grpc-timeout", value: value) }
        context.fireChannelRead(wrapInboundOut(.headers(frame)))
    }
}
