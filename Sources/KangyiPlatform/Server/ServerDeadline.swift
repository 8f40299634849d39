import GRPCCore
import NIOCore
import NIOPosix

/// Ends a call at its deadline as grpc-swift does — by cancelling the RPC's cancellation handle, which
/// handlers and the group committer listen to — but with a timer on an event loop: a heap entry on the
/// loop the call runs on, removed when the call ends, instead of grpc-swift's child task sleeping on a
/// runtime timer per call (``GRPCTimeout/receivedKey``).
enum ServerDeadline {
    /// Past this a deadline is as good as none: the timer is set for it (NIO counts in 64-bit nanoseconds,
    /// and `grpc-timeout` allows 99,999,999 hours). Timed to the microsecond.
    static let longest = Duration.seconds(366 * 24 * 3600)

    /// Cancels `handle` after `timeout`, unless the returned timer is cancelled first.
    static func start(after timeout: Duration, cancelling handle: ServerContext.RPCCancellationHandle) -> NIOScheduledCallback? {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        // Fails only on a loop that is shutting down: the process is ending, and with it the call.
        return try? loop.scheduleCallback(
            in: .microseconds(min(max(timeout, .zero), longest).inMicroseconds), handler: CancelAtDeadline(handle: handle))
    }

    private struct CancelAtDeadline: NIOScheduledCallbackHandler, Sendable {
        let handle: ServerContext.RPCCancellationHandle
        func handleScheduledCallback(eventLoop: some EventLoop) { handle.cancel() }
    }
}
