import NIOCore
import NIOHPACK
import NIOHTTP2

/// A call's headers as grpc-swift must never see them, mended, moved or answered before it reads them. First
/// in every stream's pipeline (``GRPCServerService``); found by sending headers by hand (stop 33).
///
/// - A `grpc-timeout` that is not what the protocol allows (``GRPCTimeout/isWellFormed``) is removed, so
///   it is ignored, as grpc-swift ignores the malformed values it does not trap on. grpc-swift 2.4 stops
///   the whole process on a negative one (`Timeout.init(amount:unit:)` preconditions on it): one header
///   from any caller — `grpc-timeout: -5S` — and every call in flight was gone with it.
/// - A `grpc-encoding` naming more than one algorithm (`x,y`, or the header twice) is answered
///   UNIMPLEMENTED here, as grpc-swift answers one algorithm it does not support; it would say INTERNAL.
/// - While the server is at its in-flight limit, a call that counts against it is refused here
///   (``ShedsAtCapacity``): cheaply, before grpc-swift and the interceptors spend anything on it.
/// - The first well-formed `grpc-timeout` moves to ``GRPCTimeout/receivedKey`` (when `movesTimeouts`), where
///   the platform's interceptor times the call more cheaply than grpc-swift would; a caller's own header of
///   that name is dropped.
final class RequestHeaderGuard: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The call was answered here: nothing more of it goes on.
    private var answered = false
    /// False for the bench's bare grpc-swift server, whose point is to time calls as grpc-swift does.
    private let movesTimeouts: Bool
    /// The server's in-flight limit; nil for the bare server.
    private let shedding: ShedsAtCapacity?

    init(movesTimeouts: Bool = true, shedding: ShedsAtCapacity? = nil) {
        self.movesTimeouts = movesTimeouts
        self.shedding = shedding
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        guard case .headers(var frame) = unwrapInboundIn(data) else { return context.fireChannelRead(data) }
        // One pass, allocating nothing unless there is a timeout to move or a fault (this runs for every call).
        var encodings = 0
        var mendTimeouts = false
        var firstTimeout: String?
        for (name, value, _) in frame.headers {
            if name == "grpc-encoding" {
                encodings += value.utf8.contains(UInt8(ascii: ",")) ? 2 : 1
            } else if name == "grpc-timeout" {
                let wellFormed = GRPCTimeout.isWellFormed(value)
                if wellFormed, firstTimeout == nil { firstTimeout = value }
                mendTimeouts = mendTimeouts || movesTimeouts || !wellFormed
            } else if name == GRPCTimeout.receivedKey {
                mendTimeouts = true
            }
        }
        if let refusal = shedding?.refusal(for: frame.headers) {
            answered = true
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: refusal, endStream: true))), promise: nil)
            return
        }
        if encodings > 1 {
            answered = true
            let refusal: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": "12",
                "grpc-message": "grpc-encoding names one algorithm; this server accepts identity",
                "grpc-accept-encoding": "identity",
            ]
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: refusal, endStream: true))), promise: nil)
            return
        }
        guard mendTimeouts else { return context.fireChannelRead(data) }
        // The bare server's well-formed values stay (only a malformed one brings it here).
        let kept = movesTimeouts ? [] : frame.headers["grpc-timeout"].filter(GRPCTimeout.isWellFormed)
        frame.headers.remove(name: "grpc-timeout")
        frame.headers.remove(name: GRPCTimeout.receivedKey)
        if movesTimeouts, let firstTimeout { frame.headers.add(name: GRPCTimeout.receivedKey, value: firstTimeout) }
        for value in kept { frame.headers.add(name: "grpc-timeout", value: value) }
        context.fireChannelRead(wrapInboundOut(.headers(frame)))
    }
}
