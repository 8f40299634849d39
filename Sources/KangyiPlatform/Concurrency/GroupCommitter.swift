import ServiceLifecycle
import Synchronization

/// Commits concurrent writes together: callers `submit` an item and wait; `lanes` loops each take
/// everything queued (up to `maxBatch`) and hand it to `commit` as one batch — one transaction, one
/// multi-row INSERT — then answer every caller with its own result. A caller is answered only after its
/// batch committed, so an acknowledged write is durable. At low load a batch is one item and adds no
/// wait; under a burst, items queue while the previous commit flushes, so the rate is bounded by flushes
/// per second times the batch size, not by one flush per request.
///
/// As a lifecycle service it stops taking new items on graceful shutdown (callers get UNAVAILABLE), commits
/// what is queued, then returns.
public final class GroupCommitter<Item: Sendable, Output: Sendable>: Service, Sendable {
    public typealias Commit = @Sendable ([Item]) async -> [Result<Output, any Error>]

    private struct Pending {
        var item: Item
        var continuation: CheckedContinuation<Output, any Error>
    }

    private struct State {
        var queue: [Pending] = []
        var idleLanes: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let lanes: Int
    private let commit: Commit

    /// - Parameters:
    ///   - maxBatch: the most items in one commit.
    ///   - lanes: batches committed concurrently (each on its own connection).
    ///   - commit: writes a batch and returns one result per item, in order.
    public init(maxBatch: Int = 500, lanes: Int = 2, commit: @escaping Commit) {
        self.maxBatch = maxBatch
        self.lanes = lanes
        self.commit = commit
    }

    /// Queues `item` and returns its result once its batch has committed.
    public func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let wake: CheckedContinuation<Void, Never>?? = state.withLock { state in
                if state.closed { return .none }
                state.queue.append(Pending(item: item, continuation: continuation))
                return .some(state.idleLanes.popLast())
            }
            switch wake {
            case .none:
                continuation.resume(throwing: ServiceError.unavailable(reason: "SHUTTING_DOWN", "the server is shutting down; retry"))
            case .some(let lane):
                lane?.resume()
            }
        }
    }

    public func run() async {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<lanes { group.addTask { await self.lane() } }
            }
        } onGracefulShutdown: {
            let idle = self.state.withLock { state in
                state.closed = true
                defer { state.idleLanes.removeAll() }
                return state.idleLanes
            }
            for lane in idle { lane.resume() }
        }
    }

    /// Takes the next batch, or nil when closed and drained; parks while there is nothing to do.
    private func nextBatch() async -> [Pending]? {
        while true {
            let batch: [Pending]?? = state.withLock { state in
                if !state.queue.isEmpty {
                    let count = min(state.queue.count, maxBatch)
                    defer { state.queue.removeFirst(count) }
                    return .some(Array(state.queue.prefix(count)))
                }
                return state.closed ? .some(nil) : .none
            }
            if let batch { return batch }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    if !state.queue.isEmpty || state.closed { return true }
                    state.idleLanes.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    private func lane() async {
        while let batch = await nextBatch() {
            let results = await commit(batch.map(\.item))
            for (index, pending) in batch.enumerated() {
                if index < results.count {
                    pending.continuation.resume(with: results[index])
                } else {
                    pending.continuation.resume(throwing: PlatformError(description: "batch commit returned too few results"))
                }
            }
        }
    }
}
