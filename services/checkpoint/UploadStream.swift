import GRPCCore
import KangyiAPI
import KangyiPlatform
import Synchronization

/// One terminal's `UploadVehicleLogs` stream. Logs are validated as they arrive and queued; two
/// committers each take everything queued and hand it to the group commit as one ticket — at a trickle
/// a chunk is one log and waits for nothing, from a fast terminal chunks grow while the previous one
/// commits (a ticket and a task per log were a fifth of the server's CPU per log). At most ``window``
/// logs of a stream, and ``sharedWindow`` of all streams, are queued or committing at once, so the
/// server reads no faster than it commits and HTTP/2 flow control holds a fast terminal back. A third
/// task writes acknowledgements whenever the high-water mark moves — one message for everything a
/// commit settled, not one per log — and the reading also waits while the terminal has not been told
/// ``Acknowledgements/heldItems`` refusals.
struct UploadStream {
    /// Logs of one stream awaiting their commit at most: room for the group commit to gather large
    /// batches (a window of 512 gave batches of about 400 logs and 33,000 logs/s with four terminals;
    /// 2,048 gave 1,370 and 41,500 — per-batch work spread over more logs).
    static let window = 2048
    /// Logs of all streams of a process awaiting their commit at most (a few MiB): when every terminal
    /// of a city reconnects with a backlog at once, streams wait for room instead of the server's memory
    /// growing with their number.
    static let sharedWindow = 16_384
    /// Logs one message may carry.
    static let maximumPerMessage = 512
    /// Chunks of one stream committing at once (the group committer has two lanes).
    static let committers = 2

    let store: VehicleLogStore
    /// The process's ``sharedWindow``.
    let shared: SharedCapacity
    /// The log as stored, or the violations that refuse it.
    let validate: @Sendable (Kangyi_Checkpoint_V1_VehicleLog) -> Result<NewVehicleLog, ServiceError>
    /// Throws PERMISSION_DENIED when the caller may not upload as this terminal.
    let authorize: @Sendable (String) throws -> Void

    func run(
        requests: RPCAsyncSequence<Kangyi_Checkpoint_V1_UploadVehicleLogsRequest, any Error>,
        response: RPCWriter<Kangyi_Checkpoint_V1_UploadVehicleLogsResponse>
    ) async throws {
        let acks = Acknowledgements()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while let update = await acks.next() { try await response.write(update) }
            }
            // The reading stops when the RPC is cancelled (the caller left, or the server drains): what
            // was not acknowledged is resent on the next stream and answered as a resend.
            let reading = Task { try await read(requests, into: acks) }
            do {
                try await withTaskCancellationHandler {
                    try await withRPCCancellationHandler { try await reading.value } onCancelRPC: { reading.cancel() }
                } onCancel: {
                    reading.cancel()
                }
            } catch {
                acks.finish()
                throw error
            }
            acks.finish()
            try await group.waitForAll()
        }
    }

    private func read(
        _ requests: RPCAsyncSequence<Kangyi_Checkpoint_V1_UploadVehicleLogsRequest, any Error>, into acks: Acknowledgements
    ) async throws {
        let queue = ChunkQueue<(sequence: Int64, log: NewVehicleLog)>(capacity: Self.window, shared: shared)
        try await withThrowingTaskGroup(of: Void.self) { committers in
            for _ in 0..<Self.committers {
                committers.addTask {
                    do {
                        while let chunk = await queue.take() {
                            let outcomes = try await Self.ingest(chunk.map(\.log), into: store)
                            acks.settle(zip(chunk, outcomes).map { ($0.sequence, $1) })
                            queue.done(chunk.count)
                        }
                    } catch {
                        queue.fail(error)  // the reader stops at its next log
                        throw error
                    }
                }
            }
            defer { queue.close() }  // a reader that throws still lets the committers end
            var order = StreamOrder()
            var valid: [(sequence: Int64, log: NewVehicleLog)] = []
            for try await request in requests {
                await acks.room()
                guard request.logs.count <= Self.maximumPerMessage else {
                    throw ServiceError.invalidArgument(
                        field: "logs", reason: "TOO_MANY_LOGS",
                        "at most \(Self.maximumPerMessage) logs in one message (this one has \(request.logs.count))")
                }
                for log in Self.logs(of: request) {
                    try authorize(log.terminalID)
                    if let refusal = order.place(log) {
                        // Not a position in this stream's order: reported, never acknowledged past.
                        acks.report(.with {
                            $0.sequence = log.sequence
                            $0.outcome = .rejected
                            $0.violations = refusal.map(\.wire)
                        })
                        continue
                    }
                    acks.received(log.sequence)
                    switch validate(log) {
                    case .failure(let error): acks.settle([(log.sequence, .rejected(error.violations))])
                    case .success(let new): valid.append((log.sequence, new))
                    }
                }
                try await queue.put(contentsOf: valid)
                valid.removeAll(keepingCapacity: true)
            }
            queue.close()  // the committers commit what is queued, then end
            try await committers.waitForAll()
        }
    }

    /// The logs a message carries: `log` when set (or when nothing else is: an empty message is refused
    /// as the log it does not hold), then `logs`.
    static func logs(of request: Kangyi_Checkpoint_V1_UploadVehicleLogsRequest) -> [Kangyi_Checkpoint_V1_VehicleLog] {
        if request.logs.isEmpty { return [request.log] }
        return request.hasLog ? [request.log] + request.logs : request.logs
    }

    /// The outcome of each log. A log the database itself refuses (after the batch isolated it) is
    /// rejected for good; an unreachable database or a shutdown ends the stream, so the terminal resends.
    static func ingest(_ logs: [NewVehicleLog], into store: VehicleLogStore) async throws -> [IngestOutcome] {
        try await store.ingest(logs).map { result in
            do {
                return try result.get()
            } catch let error where isItemLevel(error) {
                return .rejected([.init(field: "log", reason: "STORAGE_REFUSED", description: "the database refused this log")])
            }
        }
    }

    static func isItemLevel(_ error: any Error) -> Bool {
        switch DatabaseErrorKind(error) {
        case .other?, .uniqueViolation?: true
        default: false
        }
    }
}

/// The order a stream's logs keep: one terminal's, in increasing sequence.
struct StreamOrder {
    private var terminal: String?
    private var last: Int64 = 0

    /// Why `log` has no place in this order, or nil — and it is now the last.
    mutating func place(_ log: Kangyi_Checkpoint_V1_VehicleLog) -> [ServiceError.FieldViolation]? {
        if let terminal, log.terminalID != terminal {
            return [.init(field: "log.terminal_id", reason: "TERMINAL_CHANGED", description: "a stream carries one terminal's logs")]
        }
        if log.sequence <= last {
            return [.init(
                field: "log.sequence", reason: "SEQUENCE_NOT_INCREASING",
                description: "must increase within a stream (the previous was \(last))")]
        }
        terminal = log.terminalID
        last = log.sequence
        return nil
    }
}

/// What a stream has settled and not yet told the terminal: the high-water mark (every sequence up to
/// it settled), the logs refused since the last message, and the stream's totals.
final class Acknowledgements: Sendable {
    /// Refusals held for the terminal at most before its stream reads on (``room()``): a terminal that
    /// does not read its answers cannot grow the server's memory, and a message stays well within every
    /// client's 4 MiB (these and one request's 512 refusals, each naming at most 10 violations: ~2 MiB).
    static let heldItems = 1024

    typealias Message = Kangyi_Checkpoint_V1_UploadVehicleLogsResponse

    private struct State {
        /// The stream's sequences in arrival order (increasing), from the first not yet settled.
        var order: [(sequence: Int64, settled: Bool)] = []
        var head = 0
        var ackedThrough: Int64 = 0
        var items: [Kangyi_Checkpoint_V1_ItemResult] = []
        var stored: Int64 = 0
        var replayed: Int64 = 0
        var changed = false
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
        /// The reader, waiting for the writer to tell what is held.
        var reader: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func received(_ sequence: Int64) {
        state.withLock { state in
            state.order.append((sequence, false))
        }
    }

    /// Records what happened to these logs (one lock and one wake-up for a whole chunk).
    func settle(_ outcomes: [(sequence: Int64, outcome: IngestOutcome)]) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            for (sequence, outcome) in outcomes { settle(sequence, outcome, in: &state) }
            state.changed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private func settle(_ sequence: Int64, _ outcome: IngestOutcome, in state: inout State) {
        switch outcome {
        case .stored: state.stored += 1
        case .replayed: state.replayed += 1
        case .conflict:
            state.items.append(.with {
                $0.sequence = sequence
                $0.outcome = .conflict
            })
        case .rejected(let violations):
            state.items.append(.with {
                $0.sequence = sequence
                $0.outcome = .rejected
                $0.violations = violations.map(\.wire)
            })
        }
        // Sequences arrive in increasing order, so a binary search finds this one.
        let low = state.order[state.head...].partitioningIndex { $0.sequence >= sequence }
        if low < state.order.count, state.order[low].sequence == sequence { state.order[low].settled = true }
        while state.head < state.order.count, state.order[state.head].settled {
            state.ackedThrough = state.order[state.head].sequence
            state.head += 1
        }
        if state.head > 1024 {
            state.order.removeFirst(state.head)
            state.head = 0
        }
    }

    func report(_ item: Kangyi_Checkpoint_V1_ItemResult) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.items.append(item)
            state.changed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// No more settlements: ``next()`` returns what is left, then nil.
    func finish() {
        let (waiter, reader) = state.withLock { state in
            state.finished = true
            defer { (state.waiter, state.reader) = (nil, nil) }
            return (state.waiter, state.reader)
        }
        waiter?.resume()
        reader?.resume()
    }

    /// Returns once fewer than ``heldItems`` refusals wait to be told (or the stream ends, or the task is
    /// cancelled): the reader asks before each message.
    func room() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    if state.items.count < Self.heldItems || state.finished || Task.isCancelled { return true }
                    state.reader = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let reader = state.withLock { state in
                defer { state.reader = nil }
                return state.reader
            }
            reader?.resume()
        }
    }

    /// The next message for the terminal, once something changed; nil when finished and told.
    func next() async -> Message? {
        while true {
            let (update, reader): (Message??, CheckedContinuation<Void, Never>?) = state.withLock { state in
                if state.changed {
                    state.changed = false
                    defer { (state.items, state.reader) = ([], nil) }
                    let message = Message.with {
                        $0.ackedThrough = state.ackedThrough
                        $0.items = state.items
                        $0.stored = state.stored
                        $0.replayed = state.replayed
                    }
                    return (.some(message), state.reader)
                }
                return (state.finished ? .some(nil) : nil, nil)
            }
            reader?.resume()
            if let update { return update }
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    if state.changed || state.finished { return true }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }
}
