import Metrics
import Prometheus

/// The metrics every server keeps per method and status, emitted in Prometheus text format on `/metrics`.
/// Owns its registry, so tests (and several servers in one `kangyi dev` process) never share global state.
public final class RPCMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        // Latency buckets from 1 ms to 10 s: unary RPCs and group commits live in the low milliseconds.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .seconds(2), .seconds(5), .seconds(10),
        ]
        self.factory = factory
    }

    /// Counts an RPC and its duration under `kangyi_rpc_total` (per method, status and caller — callers
    /// are the gateway's token holders, a short list) and `kangyi_rpc_duration_seconds` (per method).
    public func record(method: String, code: String, caller: String, duration: Duration) {
        Counter(
            label: "kangyi_rpc_total", dimensions: [("method", method), ("code", code), ("caller", caller)], factory: factory
        ).increment()
        Metrics.Timer(label: "kangyi_rpc_duration_seconds", dimensions: [("method", method)], factory: factory)
            .record(duration: duration)
    }

    /// A counter of this registry, to keep and increment (a service's own figures beside the RPCs').
    public func counter(_ label: String, dimensions: [(String, String)] = []) -> Metrics.Counter {
        Counter(label: label, dimensions: dimensions, factory: factory)
    }

    /// The registry in Prometheus text exposition format.
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
