import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Serves the process's metrics in Prometheus text format at `GET /metrics` on its own HTTP port. A
/// connection silent for `idleTimeout` is closed, as the gateway's JSON door closes one.
public struct MetricsHTTPServer: Service {
    let application: Application<RouterResponder<BasicRequestContext>>
    let boundAddress: BoundAddress

    public init(metrics: RPCMetrics, host: String, port: Int, idleTimeout: Duration, logger: Logger) {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        let boundAddress = BoundAddress()
        self.boundAddress = boundAddress
        self.application = Application(
            router: router, server: .http1(configuration: .init(idleTimeout: TimeAmount(idleTimeout))),
            configuration: .init(address: .hostname(host, port: port), serverName: "kangyi"),
            onServerRunning: boundAddress.recorder(host: host), logger: logger)
    }

    public func listeningAddress() async -> String { await boundAddress.get() }

    public func run() async throws {
        try await application.run()
    }
}
