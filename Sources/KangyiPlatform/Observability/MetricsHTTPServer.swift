import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Serves the process's metrics in Prometheus text format at `GET /metrics` on its own HTTP port.
public struct MetricsHTTPServer: Service {
    let application: Application<RouterResponder<BasicRequestContext>>
    let boundAddress: BoundAddress

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

    public init(metrics: RPCMetrics, host: String, port: Int, logger: Logger) {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        let boundAddress = BoundAddress()
        self.boundAddress = boundAddress
        self.application = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "kangyi"),
            onServerRunning: boundAddress.recorder(host: host), logger: logger)
    }

    public func listeningAddress() async -> String { await boundAddress.get() }

    public func run() async throws {
        try await application.run()
    }
}
