import NIOCore
import Synchronization

/// Where a server listens once started (port 0 picks a free one); `get()` waits until it is known.
public final class BoundAddress: Sendable {
    private let state = Mutex<(address: String?, waiters: [CheckedContinuation<String, Never>])>((nil, []))

    public init() {}

    public func set(_ address: String) {
        let waiters = state.withLock { state in
            state.address = address
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: address) }
    }

    /// Hummingbird's `onServerRunning`: records where the server listens.
    public func recorder(host: String) -> @Sendable (any Channel) async -> Void {
        { [self] channel in
            if let address = channel.localAddress, let port = address.port { set("\(address.ipAddress ?? host):\(port)") }
        }
    }

    public func get() async -> String {
        await withCheckedContinuation { continuation in
            let known: String? = state.withLock { state in
                if state.address == nil { state.waiters.append(continuation) }
                return state.address
            }
            if let known { continuation.resume(returning: known) }
        }
    }
}
