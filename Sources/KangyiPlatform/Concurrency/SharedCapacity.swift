import Synchronization

/// Units of something many producers hold at once — the logs every upload stream of a process keeps
/// in memory until their commit. `acquire` waits, first come first served, until its units fit within
/// `capacity` (more than `capacity` at once waits until nothing else is held); `release` gives them
/// back. A cancelled wait throws `CancellationError` and takes nothing. Per-stream windows bound one
/// caller; this bounds all of them together, however many reconnect with a backlog at once.
public final class SharedCapacity: Sendable {
    private struct Waiter {
        let id: UInt64
        let count: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var held = 0
        var waiters: [Waiter] = []
        var lastID: UInt64 = 0

        func fits(_ count: Int, within capacity: Int) -> Bool { held == 0 || held + count <= capacity }
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) { self.capacity = capacity }

    /// Units held now (for tests and metrics).
    public var held: Int { state.withLock { $0.held } }

    public func acquire(_ count: Int) async throws {
        guard count > 0 else { return }
        let id = state.withLock { state in
            state.lastID += 1
            return state.lastID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready: Result<Void, any Error>? = state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.waiters.isEmpty, state.fits(count, within: capacity) {
                        state.held += count
                        return .success(())
                    }
                    state.waiters.append(Waiter(id: id, count: count, continuation: continuation))
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
            admitWaiters()  // the first in line may have left: those behind it may fit
        }
    }

    public func release(_ count: Int) {
        guard count > 0 else { return }
        state.withLock { $0.held -= count }
        admitWaiters()
    }

    private func admitWaiters() {
        let admitted = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            var admitted: [CheckedContinuation<Void, any Error>] = []
            while let first = state.waiters.first, state.fits(first.count, within: capacity) {
                state.held += first.count
                admitted.append(state.waiters.removeFirst().continuation)
            }
            return admitted
        }
        for continuation in admitted { continuation.resume() }
    }
}
