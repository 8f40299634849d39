import Synchronization

/// The result of `operation`, or nil once `timeout` has passed or the caller is cancelled — without waiting
/// for an operation that ignores cancellation (postgres-nio's connect to a server whose kernel accepted the
/// TCP connection and whose process never answers: a frozen host, a stopped postmaster). Such an operation
/// is cancelled and left to end on its own; if it holds a resource when it ends cancelled, it releases it.
public func abandoning<T: Sendable>(
    after timeout: Duration, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T? {
    let work = Task { try await operation() }
    let outcome = Outcome<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            guard outcome.wait(continuation) else { return }
            let timer = Task {
                try await Task.sleep(for: timeout)
                work.cancel()
                outcome.finish(.success(nil))
            }
            Task {
                let result = await work.result
                timer.cancel()
                outcome.finish(result.map { $0 })
            }
        }
    } onCancel: {
        work.cancel()
        outcome.finish(.success(nil))
    }
}

/// The first of several racers to finish answers the waiting caller; the others change nothing.
private final class Outcome<T: Sendable>: Sendable {
    private enum State {
        case starting
        case waiting(CheckedContinuation<T?, any Error>)
        case finished
    }
    private let state = Mutex(State.starting)

    /// Waits with `continuation`; false (and `continuation` answered nil) if a racer already finished.
    func wait(_ continuation: CheckedContinuation<T?, any Error>) -> Bool {
        let waiting = state.withLock { state in
            guard case .starting = state else { return false }
            state = .waiting(continuation)
            return true
        }
        if !waiting { continuation.resume(returning: nil) }
        return waiting
    }

    func finish(_ result: Result<T?, any Error>) {
        let continuation: CheckedContinuation<T?, any Error>? = state.withLock { state in
            defer { state = .finished }
            guard case .waiting(let continuation) = state else { return nil }
            return continuation
        }
        continuation?.resume(with: result)
    }
}
