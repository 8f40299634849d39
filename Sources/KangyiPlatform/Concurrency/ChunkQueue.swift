import Synchronization

/// A bounded queue between one producer and a few consumers that take everything queued at once: the
/// shape of a stream whose items are committed in chunks. `put` waits until what it puts fits beside the
/// items queued or taken and not yet `done` within `capacity` (so a fast producer is held back, not
/// buffered); `take` waits for at least one item and returns them all, or nil once closed and empty. A
/// cancelled `put` throws; a cancelled `take` closes the queue (consumers are cancelled when the whole
/// stream ends). After `fail`, `put` throws the consumer's error.
///
/// A queue may also hold its elements' units of a ``SharedCapacity`` that bounds many queues together
/// (every upload stream of a process): `put` acquires them, `done` gives them back, and whatever the
/// queue still holds when it goes — its stream failed or was cancelled mid-chunk — goes back with it.
public final class ChunkQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var taken = 0
        var closed = false
        var failure: (any Error)?
        /// A producer waiting for room for this many elements.
        var producer: (continuation: CheckedContinuation<Void, any Error>, count: Int)?
        var consumers: [CheckedContinuation<[Element]?, Never>] = []

        func hasRoom(for count: Int, capacity: Int) -> Bool {
            let held = items.count + taken
            return held == 0 || held + count <= capacity
        }
    }

    private let capacity: Int
    private let shared: SharedCapacity?
    private let state = Mutex(State())

    public init(capacity: Int, shared: SharedCapacity? = nil) {
        self.capacity = capacity
        self.shared = shared
    }

    deinit { shared?.release(state.withLock { $0.items.count + $0.taken }) }

    /// Queues `element` once there is room.
    public func put(_ element: Element) async throws {
        try await put(contentsOf: CollectionOfOne(element))
    }

    /// Queues `elements` once there is room for all of them (or the queue is empty: more than
    /// `capacity` at once go in alone).
    public func put(contentsOf elements: some Collection<Element>) async throws {
        guard !elements.isEmpty else { return }
        let count = elements.count
        try await shared?.acquire(count)
        do {
            try await waitForRoom(count)
        } catch {
            shared?.release(count)
            throw error
        }
        let handOver = state.withLock { state -> (CheckedContinuation<[Element]?, Never>, [Element])? in
            state.items.append(contentsOf: elements)
            guard !state.consumers.isEmpty else { return nil }
            defer {
                state.taken += state.items.count
                state.items.removeAll(keepingCapacity: true)
            }
            return (state.consumers.removeFirst(), state.items)
        }
        if let (consumer, items) = handOver { consumer.resume(returning: items) }
    }

    private func waitForRoom(_ count: Int) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready: Result<Void, any Error>? = state.withLock { state in
                    if let failure = state.failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.hasRoom(for: count, capacity: capacity) { return .success(()) }
                    state.producer = (continuation, count)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let producer = state.withLock { state in
                defer { state.producer = nil }
                return state.producer
            }
            producer?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Everything queued (at least one element), or nil once closed and drained, or cancelled.
    public func take() async -> [Element]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[Element]?, Never>) in
                let ready: [Element]?? = state.withLock { state in
                    if !state.items.isEmpty {
                        defer {
                            state.taken += state.items.count
                            state.items.removeAll(keepingCapacity: true)
                        }
                        return .some(state.items)
                    }
                    if state.closed || Task.isCancelled { return .some(nil) }
                    state.consumers.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            close()
        }
    }

    /// `count` taken elements are finished with: room for as many more.
    public func done(_ count: Int) {
        shared?.release(count)
        let producer = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            state.taken -= count
            guard let producer = state.producer, state.hasRoom(for: producer.count, capacity: capacity) else { return nil }
            state.producer = nil
            return producer.continuation
        }
        producer?.resume()
    }

    /// No more elements: waiting consumers get nil once the queue is empty.
    public func close() {
        let waiting = state.withLock { state -> [CheckedContinuation<[Element]?, Never>] in
            state.closed = true
            defer { state.consumers.removeAll() }
            return state.consumers
        }
        for consumer in waiting { consumer.resume(returning: nil) }
    }

    /// A consumer failed: the producer's next (or current) `put` throws `error`.
    public func fail(_ error: any Error) {
        let producer = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            state.failure = error
            defer { state.producer = nil }
            return state.producer?.continuation
        }
        producer?.resume(throwing: error)
        close()
    }
}
