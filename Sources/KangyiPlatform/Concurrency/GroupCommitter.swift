import GRPCCore
import ServiceLifecycle
import Synchronization

/// Commits concurrent writes together: callers `submit` an item and wait; `lanes` loops each take
/// everything queued (up to `maxBatch`) and hand it to `commit` as one batch — one transaction, one
/// multi-row INSERT — then answer every caller with its own result. A caller is answered only after its
/// batch committed, so an acknowledged write is durable. At low load a batch is one item and adds no
/// wait; under a burst, items queue while the previous commit flushes, so the rate is bounded by flushes
/// per second times the batch size, not by one flush per request.
///
/// What a batch must never do is fail its neighbours:
/// - **One bad item fails alone.** When `commit` throws (the transaction rolled back), the batch is split
///   in halves and each half committed on its own, down to the single item that fails — which alone gets
///   the error. Only a database that cannot be reached fails the whole batch (every half would fail too).
/// - **Nobody waits past their own deadline.** A caller whose task is cancelled (its RPC's deadline
///   passed, or it went away) is answered at once and dropped from the queue; a batch whose callers have
///   all gone is cancelled, so a commit stuck on an unreachable database ends with them. A write
///   cancelled after it reached the database may still have committed: retries are idempotent.
///
/// As a lifecycle service it stops taking new items on graceful shutdown (callers get UNAVAILABLE), commits
/// what is queued, then returns; cancelled (past the drain budget), its commits are cancelled too.
public final class GroupCommitter<Item: Sendable, Output: Sendable>: Service, Sendable {
    /// Writes a batch in one transaction and returns one result per item, in order; throws when the
    /// transaction as a whole failed (nothing of the batch was stored).
    public typealias Commit = @Sendable ([Item]) async throws -> [Result<Output, any Error>]

    private struct State {
        var queue: [Ticket] = []
        var idleLanes: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let lanes: Int
    private let commit: Commit
    /// Whether an error of a whole batch cannot be blamed on any item (the database is unreachable), so
    /// splitting the batch would only repeat it.
    private let failsEveryone: @Sendable (any Error) -> Bool

    /// - Parameters:
    ///   - maxBatch: the most items in one commit.
    ///   - lanes: batches committed concurrently (each on its own connection).
    ///   - commit: writes a batch and returns one result per item, in order (see ``Commit``).
    public init(maxBatch: Int = 500, lanes: Int = 2, commit: @escaping Commit) {
        self.maxBatch = maxBatch
        self.lanes = lanes
        self.commit = commit
        self.failsEveryone = { DatabaseErrorKind($0) == .unavailable }
    }

    /// Queues `item` and returns its result once its batch has committed.
    public func submit(_ item: Item) async throws -> Output {
        let ticket = Ticket(item)
        // grpc-swift signals a passed deadline through the RPC's cancellation handle, not the task; it
        // signals a server's drain the same way, which must not fail calls that are to finish. So the
        // caller leaves on task cancellation, or on RPC cancellation once its deadline has passed.
        let deadline = GRPCTimeout.deadline
        return try await withRPCCancellationHandler {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    guard ticket.wait(continuation) else { return }  // cancelled already, and answered
                    let wake: CheckedContinuation<Void, Never>?? = state.withLock { state in
                        if state.closed { return .none }
                        state.queue.append(ticket)
                        return .some(state.idleLanes.popLast())
                    }
                    switch wake {
                    case .none:
                        ticket.finish(.failure(ServiceError.unavailable(reason: "SHUTTING_DOWN", "the server is shutting down; retry")))
                    case .some(let lane):
                        lane?.resume()
                    }
                }
            } onCancel: {
                // Queued: it stays in the queue, but a lane skips it. Committing: the batch learns it is gone.
                ticket.finish(.failure(CancellationError()))
            }
        } onCancelRPC: {
            if let deadline, ContinuousClock.now >= deadline - .milliseconds(5) {
                ticket.finish(.failure(RPCError(code: .deadlineExceeded, message: "the call's deadline passed")))
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

    /// Takes the next batch of callers still waiting, or nil when closed and drained; parks while there
    /// is nothing to do.
    private func nextBatch() async -> [Ticket]? {
        while true {
            let batch: [Ticket]?? = state.withLock { state in
                state.queue.removeAll { $0.isAnswered }
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
        while let tickets = await nextBatch() {
            let batch = Batch(tickets)
            guard !batch.isEmpty else { continue }
            let items = tickets.map(\.item)
            let work = Task { await self.commitIsolating(items) }
            // The lane moves on when the commit ends — or when every caller has gone or the lane is
            // cancelled (the drain is over): then the commit is cancelled and left behind, so a commit
            // stuck on a database that does not answer holds up neither this lane nor shutdown.
            let outcome = Outcome()
            Task { outcome.finish(await work.value) }
            batch.onAllGone {
                work.cancel()
                outcome.finish(nil)
            }
            let results = await withTaskCancellationHandler {
                await outcome.value
            } onCancel: {
                work.cancel()
                outcome.finish(nil)
            }
            for (index, ticket) in tickets.enumerated() {
                ticket.finish(
                    results.map { index < $0.count ? $0[index] : .failure(PlatformError(description: "batch commit returned too few results")) }
                        ?? .failure(CancellationError()))
            }
        }
    }

    /// A batch's results, or nil when the lane stopped waiting for them; settled once.
    private final class Outcome: Sendable {
        private let state = Mutex<(settled: [Result<Output, any Error>]??, waiter: CheckedContinuation<[Result<Output, any Error>]?, Never>?)>((nil, nil))

        func finish(_ results: [Result<Output, any Error>]?) {
            let waiter = state.withLock { state -> CheckedContinuation<[Result<Output, any Error>]?, Never>? in
                guard state.settled == nil else { return nil }
                state.settled = .some(results)
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: results)
        }

        var value: [Result<Output, any Error>]? {
            get async {
                await withCheckedContinuation { continuation in
                    let settled = state.withLock { state -> [Result<Output, any Error>]?? in
                        if let settled = state.settled { return .some(settled) }
                        state.waiter = continuation
                        return .none
                    }
                    if let settled { continuation.resume(returning: settled) }
                }
            }
        }
    }

    /// Commits `items`; when the transaction fails as a whole, commits each half on its own, so that the
    /// item the database refuses fails alone.
    private func commitIsolating(_ items: [Item]) async -> [Result<Output, any Error>] {
        do {
            return try await commit(items)
        } catch {
            if items.count == 1 || failsEveryone(error) || Task.isCancelled {
                return Array(repeating: .failure(error), count: items.count)
            }
            let middle = items.count / 2
            return await commitIsolating(Array(items[..<middle])) + commitIsolating(Array(items[middle...]))
        }
    }

    /// One caller's item and its answer, given exactly once: by its batch, or by its cancellation.
    private final class Ticket: Sendable {
        enum Phase {
            case new
            case waiting(CheckedContinuation<Output, any Error>)
            /// Answered (early, if the result is still here for a continuation that has not arrived).
            case answered(Result<Output, any Error>?)
        }

        let item: Item
        private let state = Mutex<(phase: Phase, batch: Batch?)>((.new, nil))

        init(_ item: Item) { self.item = item }

        /// Registers the caller's continuation; false (and the continuation resumed) if it was answered first.
        func wait(_ continuation: CheckedContinuation<Output, any Error>) -> Bool {
            let early: Result<Output, any Error>?? = state.withLock { state in
                if case .answered(let result) = state.phase {
                    state.phase = .answered(nil)
                    return .some(result)
                }
                state.phase = .waiting(continuation)
                return .none
            }
            guard let early else { return true }
            continuation.resume(with: early ?? .failure(CancellationError()))
            return false
        }

        var isAnswered: Bool { state.withLock { if case .answered = $0.phase { true } else { false } } }

        /// Joins a batch; false if already answered (it then does not count as waiting in it).
        func join(_ batch: Batch) -> Bool {
            state.withLock { state in
                if case .answered = state.phase { return false }
                state.batch = batch
                return true
            }
        }

        /// Answers the caller, unless it was answered already.
        func finish(_ result: Result<Output, any Error>) {
            let answer: (CheckedContinuation<Output, any Error>?, Batch?)? = state.withLock { state in
                switch state.phase {
                case .new:
                    state.phase = .answered(result)
                    return (nil, state.batch)
                case .waiting(let continuation):
                    state.phase = .answered(nil)
                    return (continuation, state.batch)
                case .answered:
                    return nil
                }
            }
            guard let (continuation, batch) = answer else { return }
            continuation?.resume(with: result)
            batch?.gone()
        }
    }

    /// The callers of one commit: when every one of them has been answered early, the commit is cancelled.
    private final class Batch: Sendable {
        private let state: Mutex<(waiting: Int, cancel: (@Sendable () -> Void)?)>

        init(_ tickets: [Ticket]) {
            state = Mutex((tickets.count, nil))
            for ticket in tickets where !ticket.join(self) { gone() }
        }

        var isEmpty: Bool { state.withLock { $0.waiting <= 0 } }

        func onAllGone(_ cancel: @escaping @Sendable () -> Void) {
            let now = state.withLock { state in
                if state.waiting <= 0 { return true }
                state.cancel = cancel
                return false
            }
            if now { cancel() }
        }

        func gone() {
            let cancel = state.withLock { state -> (@Sendable () -> Void)? in
                state.waiting -= 1
                return state.waiting <= 0 ? state.cancel : nil
            }
            cancel?()
        }
    }
}
