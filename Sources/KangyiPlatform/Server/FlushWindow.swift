import GRPCNIOTransportHTTP2

/// How long a connection holds a flush so that writes made meanwhile go out in one syscall, for the
/// platform's servers and its clients of other services.
///
/// grpc-swift holds a flush up to 100 µs, and a call answered alone waits all of it, on every hop.
/// Measured on the platform's no-op, release builds alternating, three rounds each: one call at a time,
/// p50 0.53–0.55 ms with 100 µs, 0.42–0.46 with 20, 0.38–0.45 with none; under 32 callers 20 µs still
/// gathers what one turn of the event loop writes (a group commit answers its callers together):
/// 9,930–10,754 calls a second against 7,133–10,120 with 100 µs and 7,819–9,919 with none, at the
/// same CPU a call. Intake's lone submission, direct: p50 1.40–2.28 → 1.19–1.55 ms.
enum FlushWindow {
    static let maxDelay: Duration = .microseconds(20)
    /// grpc-swift's own: a flush this large goes at once.
    static let maxBytes = 64 * 1024

    static var server: HTTP2ServerTransport.Config.Connection.FlushCoalescing {
        .init(maxFlushDelay: maxDelay, maxBytes: maxBytes)
    }

    static var client: HTTP2ClientTransport.Config.Connection.FlushCoalescing {
        .init(maxFlushDelay: maxDelay, maxBytes: maxBytes)
    }
}
