import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Serves the process's metrics in Prometheus text format at `GET /metrics` on its own HTTP port.
public struct MetricsHTTPServer: Service {
    let application: Application<RouterResponder<BasicRequestContext>>
    let boundAddress: BoundAddress

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
