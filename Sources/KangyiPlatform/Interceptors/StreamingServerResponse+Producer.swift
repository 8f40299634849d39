import GRPCCore
import Synchronization

extension StreamingServerResponse {
    /// Runs `around` around the producer: the part of every response (unary ones included) that executes
    /// after the interceptors have returned. Interceptors that must see the end of an RPC (its status, its
    /// duration) or keep a task-local value for it wrap the producer this way.
    mutating func wrapProducer(
        _ around: @escaping @Sendable (_ produce: @Sendable () async throws -> Metadata) async throws -> Metadata
    ) {
        guard case .success(var contents) = accepted else { return }
        let inner = contents.producer
        contents.producer = { writer in try await around { try await inner(writer) } }
        accepted = .success(contents)
    }
}

/// Something to do once a response is done with, whether or not it was produced. grpc-swift runs a
/// response's producer only after writing its headers, and skips it when that write fails (the caller
/// closed the stream first: a cancel, a passed deadline), so an interceptor that settles a call only in
/// the producer never settles such a call. Capture one of these in the producer: `run()` settles it
/// there, `dismiss()` says the producer settled it another way, and a response dropped unproduced runs
/// it when the producer goes.
final class WhenResponseIsDone: Sendable {
    private let action: Mutex<(@Sendable () -> Void)?>

    init(_ action: @escaping @Sendable () -> Void) { self.action = Mutex(action) }

    /// Runs the action, unless it already ran or was dismissed.
    func run() { action.withLock { action in defer { action = nil }; return action }?() }

    func dismiss() { action.withLock { $0 = nil } }

    deinit { run() }
}
