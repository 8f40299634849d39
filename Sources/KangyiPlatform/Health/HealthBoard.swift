import Synchronization

/// The serving status of each gRPC service in this process ("" is the whole server), with watchers.
/// The database probe writes it, the health service reads it, and graceful shutdown ends every watch.
public final class HealthBoard: Sendable {
    public enum Status: Sendable, Equatable {
        case serving
        case notServing
    }

    private struct State {
        var statuses: [String: Status] = [:]
        var watchers: [Int: (service: String, continuation: AsyncStream<Status?>.Continuation)] = [:]
        var nextWatcher = 0
        var isShutDown = false
    }

    private let state = Mutex(State())

    /// Registers services as NOT_SERVING until the first successful probe says otherwise.
    public init(services: [String] = []) {
        state.withLock { state in
            for service in services + [""] { state.statuses[service] = .notServing }
        }
    }

    /// The status of `service`; nil when this server does not know it.
    public func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    public func register(_ service: String) {
        state.withLock { state in
            if state.statuses[service] == nil { state.statuses[service] = state.statuses[""] ?? .notServing }
        }
    }

    /// Sets every registered service (and the server as a whole) to `status`, notifying watchers on change.
    public func setAll(_ status: Status) {
        state.withLock { state in
            guard !state.isShutDown else { return }
            for service in state.statuses.keys { Self.set(status, for: service, in: &state) }
        }
    }

    public func set(_ status: Status, for service: String) {
        state.withLock { state in
            guard !state.isShutDown else { return }
            Self.set(status, for: service, in: &state)
        }
    }

    private static func set(_ status: Status, for service: String, in state: inout State) {
        guard state.statuses[service] != status else { return }
        state.statuses[service] = status
        for watcher in state.watchers.values where watcher.service == service {
            watcher.continuation.yield(status)
        }
    }

    /// The current status of `service` (nil = unknown) followed by every change, until the server shuts
    /// down or the watcher calls `finish()` on the returned continuation.
    public func updates(of service: String) -> (AsyncStream<Status?>, AsyncStream<Status?>.Continuation) {
        let (stream, continuation) = AsyncStream.makeStream(of: Status?.self, bufferingPolicy: .bufferingNewest(1))
        let id: Int? = state.withLock { state in
            continuation.yield(state.statuses[service])
            guard !state.isShutDown else { return nil }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = (service, continuation)
            return id
        }
        guard let id else {
            continuation.finish()
            return (stream, continuation)
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return (stream, continuation)
    }

    /// Graceful shutdown: every service turns NOT_SERVING (so load balancers drain this replica), every
    /// watch receives that and ends, and later probes change nothing.
    public func shutDown() {
        let watchers = state.withLock { state in
            for service in state.statuses.keys { Self.set(.notServing, for: service, in: &state) }
            state.isShutDown = true
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.continuation.finish() }
    }
}
