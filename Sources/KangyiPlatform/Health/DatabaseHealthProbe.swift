import Logging
import PostgresNIO
import ServiceLifecycle

/// Probes PostgreSQL every `interval` on its own connection (not the pool, whose reconnect back-off could
/// hide the database's return) and sets every service on each server's ``HealthBoard`` SERVING or NOT_SERVING.
/// A probe that takes longer than `timeout` counts as a failure, so a hung network is noticed too.
///
/// When the database is reachable again after being unreachable for `replacingPoolsAfter` or longer, the probe
/// tells `pools` (``DatabasePools/databaseReturned()``), whose own reconnect back-off would otherwise keep
/// failing calls for a quarter of the outage, up to a minute (``DatabasePool``).
public struct DatabaseHealthProbe: Service {
    let url: DatabaseURL
    let boards: [HealthBoard]
    let pools: DatabasePools
    let interval: Duration
    let timeout: Duration
    let replacingPoolsAfter: Duration
    let logger: Logger

    /// - Parameter replacingPoolsAfter: below this an outage leaves the pools alone: their back-off is still
    ///   short (about 0.75 s after 3 s of failed connects).
    public init(
        url: DatabaseURL, boards: [HealthBoard], pools: DatabasePools = DatabasePools(), interval: Duration,
        timeout: Duration = .seconds(2), replacingPoolsAfter: Duration = .seconds(3), logger: Logger
    ) {
        self.url = url
        self.boards = boards
        self.pools = pools
        self.interval = interval
        self.timeout = timeout
        self.replacingPoolsAfter = replacingPoolsAfter
        self.logger = logger
    }

    public func run() async throws {
        var connection: PostgresConnection?
        var wasHealthy: Bool?
        var unreachableSince: ContinuousClock.Instant?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // The whole probe, connecting included, is bounded by `timeout` and abandoned past it, never
            // awaited: postgres-nio does not end a query on cancellation, so a probe waiting on a frozen
            // server (connections accepted, nothing answered) once held the process's shutdown until its
            // deadline's exit(1) — the drain's cancellation had stopped the timer that would have closed
            // the connection (Tests/Faults: the database frozen).
            let probed = try? await abandoning(after: timeout) { [connection, url, timeout, logger] in
                if let connection, !connection.isClosed {
                    try await connection.query("SELECT 1", logger: logger)
                    return connection
                }
                let fresh = try await Database.connect(url: url, connectTimeout: timeout, logger: logger)
                if Task.isCancelled {  // abandoned while connecting: nobody else will close it
                    try? await fresh.close()
                    throw CancellationError()
                }
                try await fresh.query("SELECT 1", logger: logger)
                return fresh
            }
            let healthy = probed != nil
            if let probed {
                connection = probed
            } else if let stale = connection {
                // Closing fails a query still waiting on it; not awaited, for the same reason.
                connection = nil
                Task { try? await stale.close() }
            }
            if !healthy, unreachableSince == nil {
                unreachableSince = .now
            } else if healthy, let since = unreachableSince {
                unreachableSince = nil
                if since.duration(to: .now) >= replacingPoolsAfter { pools.databaseReturned() }
            }
            for board in boards { board.setAll(healthy ? .serving : .notServing) }
            if healthy != wasHealthy {
                logger.notice("database \(healthy ? "reachable" : "unreachable"): health is \(healthy ? "SERVING" : "NOT_SERVING")")
                wasHealthy = healthy
            }
            // Sleep until the next probe, or until shutdown begins.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        // Closed before the process goes on to exit, but not waited on past `timeout`.
        if let connection { _ = try? await abandoning(after: timeout) { try await connection.close() } }
    }
}
