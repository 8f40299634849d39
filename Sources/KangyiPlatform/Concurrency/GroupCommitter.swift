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
/// - **Nobody waits on the database for ever.** A caller not answered within ``patience`` (a terminal's
///   upload stream has no deadline) is answered UNAVAILABLE and may retry. When the database goes away
///   postgres-nio's pool holds a commit's lease until it gives up reconnecting (after a minute), and once
///   the database is back until its next attempt (its backoff grows to a minute): seen as a terminal
///   told nothing for 30 s after a crash (Tests/Faults/test_terminal.py).
///
/// A caller with many items (a feed's batch, a terminal's stream) hands them over together with
/// `submit(contentsOf:)`: one ticket and one wait for all of them, each still committed — or isolated and
/// failed — on its own merits. A ticket is never split across batches.
///
/// As a lifecycle service it stops taking new items on graceful shutdown (callers get UNAVAILABLE), commits
/// what is queued, then returns; cancelled (past the drain budget), its commits are cancelled too.
public final class GroupCommitter<Item: Sendable, Output: Sendable>: Service, Sendable {
    /// Writes a batch in one transaction and returns one result per item, in order; throws when the
    /// transaction as a whole failed (nothing of the batch was stored).
    public typealias Commit = @Sendable ([Item]) async throws -> [Result<Output, any Error>]

    private struct State {
        var queue: [Ticket] = []
        /// Each lane's batch being committed (for ``answeringOverdue()``).
        var committing: [[Ticket]]
        var idleLanes: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    private let state: Mutex<State>
    private let maxBatch: Int
    private let lanes: Int
    /// How long a caller waits for its commit at most (see the type).
    public let patience: Duration
    private let commit: Commit
    private let executor: (any TaskExecutor)?

    /// - Parameters:
    ///   - maxBatch: the most items in one commit (a single ticket with more is committed alone).
    ///   - lanes: batches committed concurrently (each on its own connection).
    ///   - executor: where the lanes and their commits run (``EventLoopTaskExecutor``); the global pool when nil.
    ///   - patience: how long a caller waits for its commit at most; then it is answered UNAVAILABLE.
    ///   - commit: writes a batch and returns one result per item, in order (see ``Commit``).
    public init(
        maxBatch: Int = 500, lanes: Int = 2, executor: (any TaskExecutor)? = nil, patience: Duration = .seconds(10),
        commit: @escaping Commit
    ) {
        self.state = Mutex(State(committing: Array(repeating: [], count: lanes)))
        self.maxBatch = maxBatch
        self.lanes = lanes
        self.patience = patience
        self.executor = executor
        self.commit = commit
    }

    /// Queues `item` and returns its result once its batch has committed.
    public func submit(_ item: Item) async throws -> Output {
        try await submit(contentsOf: [item])[0].get()
    }

    /// Queues `items` together and returns one result per item, in order, once their batch has committed.
    /// Throws, for all of them, when the caller leaves (cancelled, or past its deadline) or the committer
    /// is shutting down.
    public func submit(contentsOf items: [Item]) async throws -> [Result<Output, any Error>] {
        guard !items.isEmpty else { return [] }
        let ticket = Ticket(items)
        // grpc-swift signals a passed deadline through the RPC's cancellation handle, not the task, and
        // signals a server's drain the same way — which must not fail calls that are to finish. So on the
        // RPC's cancellation the caller leaves at its deadline (at once if it has passed), never before.
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
            guard let deadline else { return }
            Task {
                try? await Task.sleep(until: deadline)
                ticket.finish(.failure(RPCError(code: .deadlineExceeded, message: "the call's deadline passed")))
            }
        }
    }

    public func run() async {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.answeringOverdue() }
                await withDiscardingTaskGroup { group in
                    for lane in 0..<lanes { group.addTask(executorPreference: executor) { await self.lane(lane) } }
                }
                group.cancelAll()
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

    /// Answers every caller waiting longer than ``patience`` (queued or committing) until cancelled, looking
    /// a few times within it: a clock read per submission and one wake-up a second, not a timer per call.
    private func answeringOverdue() async {
        let tick = min(.seconds(1), patience / 4)
        let error = ServiceError.unavailable(
            reason: "DATABASE_UNAVAILABLE", "the database did not commit this within \(patience); retry later")
        while (try? await Task.sleep(for: tick)) != nil {
            let due = ContinuousClock.now - patience
            let overdue = state.withLock { state in
                (state.queue + state.committing.joined()).filter { $0.submitted < due }
            }
            for ticket in overdue { ticket.finish(.failure(error)) }
        }
    }

    /// Takes the next batch of callers still waiting for `lane`, or nil when closed and drained; parks
    /// while there is nothing to do.
    private func nextBatch(for lane: Int) async -> [Ticket]? {
        while true {
            // Callers answered early (gone) are still queued: ``InFlight`` leaves them out of the commit.
            let batch: [Ticket]?? = state.withLock { state in
                state.committing[lane] = []
                if !state.queue.isEmpty {
                    var count = 0, items = 0
                    for ticket in state.queue {
                        if count > 0 && items + ticket.items.count > maxBatch { break }
                        count += 1
                        items += ticket.items.count
                    }
                    state.committing[lane] = Array(state.queue.prefix(count))
                    state.queue.removeFirst(count)
                    return .some(state.committing[lane])
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

    private func lane(_ lane: Int) async {
        while let queued = await nextBatch(for: lane) {
            let batch = InFlight()
            let tickets = queued.filter { $0.join(batch) }
            guard !tickets.isEmpty else { continue }
            let items = tickets.flatMap(\.items)
            // The lane moves on when the commit ends — or when every caller has gone, or the lane is
            // cancelled (the drain is over): the commit is then cancelled and left behind, so a commit
            // stuck on a database that does not answer holds up neither this lane nor shutdown.
            let results = await withTaskCancellationHandler {
                await batch.run(waiting: tickets.count, on: executor) { await self.commitIsolating(items) }
            } onCancel: {
                batch.abandon()
            }
            var offset = 0
            for ticket in tickets {
                let range = offset..<(offset + ticket.items.count)
                offset = range.upperBound
                guard let results else {
                    ticket.finish(.failure(CancellationError()))
                    continue
                }
                ticket.finish(.success(range.map {
                    $0 < results.count ? results[$0] : .failure(PlatformError(description: "batch commit returned too few results"))
                }))
            }
        }
    }

    /// Commits `items`; when the transaction fails as a whole, commits each half on its own, so that the
    /// item the database refuses fails alone.
    private func commitIsolating(_ items: [Item]) async -> [Result<Output, any Error>] {
        do {
            return try await commit(items)
        } catch {
            // An unreachable database is nobody's fault: every half would fail the same way.
            if items.count == 1 || DatabaseErrorKind(error) == .unavailable || Task.isCancelled {
                return Array(repeating: .failure(error), count: items.count)
            }
            let middle = items.count / 2
            return await commitIsolating(Array(items[..<middle])) + commitIsolating(Array(items[middle...]))
        }
    }

    /// One caller's items and their answer, given exactly once: by their batch, or by the caller's
    /// cancellation.
    private final class Ticket: Sendable {
        typealias Answer = Result<[Result<Output, any Error>], any Error>
        enum Phase {
            case new
            case waiting(CheckedContinuation<[Result<Output, any Error>], any Error>)
            /// Answered (early, if the result is still here for a continuation that has not arrived).
            case answered(Answer?)
        }

        let items: [Item]
        let submitted = ContinuousClock.now
        private let state = Mutex<(phase: Phase, batch: InFlight?)>((.new, nil))

        init(_ items: [Item]) { self.items = items }

        /// Registers the caller's continuation; false (and the continuation resumed) if it was answered first.
        func wait(_ continuation: CheckedContinuation<[Result<Output, any Error>], any Error>) -> Bool {
            let early: Answer?? = state.withLock { state in
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

        /// Joins a batch; false if already answered (it is then left out of the commit).
        func join(_ batch: InFlight) -> Bool {
            state.withLock { state in
                if case .answered = state.phase { return false }
                state.batch = batch
                return true
            }
        }

        /// Answers the caller, unless it was answered already.
        func finish(_ result: Answer) {
            let answer: (CheckedContinuation<[Result<Output, any Error>], any Error>?, InFlight?)? = state.withLock { state in
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

    /// One commit under way: its result once it ends, or nil as soon as every caller in it has been
    /// answered early or the lane gives up on it — then the commit task is cancelled.
    private final class InFlight: Sendable {
        typealias Results = [Result<Output, any Error>]

        private struct State {
            var waiting = 0
            var settled: Results??
            var waiter: CheckedContinuation<Results?, Never>?
            var work: Task<Void, Never>?
        }

        private let state = Mutex(State())

        /// Starts `commit` and waits for its results (nil if abandoned first); `waiting` callers joined.
        func run(
            waiting: Int, on executor: (any TaskExecutor)?, _ commit: @escaping @Sendable () async -> Results
        ) async -> Results? {
            let work = Task(executorPreference: executor) { self.settle(await commit()) }
            // Callers may have gone between joining and now (the count then ran below zero).
            let abandoned = state.withLock { state in
                state.waiting += waiting
                state.work = work
                return state.settled != nil || state.waiting <= 0
            }
            if abandoned { abandon() }
            return await withCheckedContinuation { continuation in
                let settled = state.withLock { state -> Results?? in
                    if let settled = state.settled { return .some(settled) }
                    state.waiter = continuation
                    return .none
                }
                if let settled { continuation.resume(returning: settled) }
            }
        }

        /// A caller of the batch was answered early; the last one to go abandons the commit.
        func gone() {
            let last = state.withLock { state in
                state.waiting -= 1
                return state.waiting == 0
            }
            if last { abandon() }
        }

        func abandon() {
            settle(nil)
            state.withLock { $0.work }?.cancel()
        }

        private func settle(_ results: Results?) {
            let waiter = state.withLock { state -> CheckedContinuation<Results?, Never>? in
                guard state.settled == nil else { return nil }
                state.settled = .some(results)
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: results)
        }
    }
}
