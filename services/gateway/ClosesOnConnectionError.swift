import NIOCore
import NIOHTTP2

/// Closes an HTTP/2 connection of the front door's (to a caller or to a backend) on a connection error.
/// NIOHTTP2 answers one — a header block beyond the size limit, a frame it cannot parse — with GOAWAY and
/// reports it down the pipeline, but leaves the connection open. Its header decoder is then out of step
/// with the peer's encoder: every later stream on that connection would hang or read another stream's
/// headers. grpc-swift's connection handlers close on such an error; these connections are the door's own.
final class ClosesOnConnectionError: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case is NIOHTTP2Errors.StreamError:
            // One stream's, reported here only for history: that stream is reset; the others are sound.
            break
        case is NIOHTTP2Errors.NoSuchStream:
            // A caller's new stream racing the door's graceful GOAWAY; the connection is closing anyway.
            break
        default:
            context.close(promise: nil)
        }
        context.fireErrorCaught(error)
    }
}
