import Logging
import PostgresNIO
import ServiceLifecycle

/// Probes PostgreSQL every `interval` on its own connection (not the pool, whose reconnect back-off could
/// hide the database's return) and sets every service on each server's ``HealthBoard`` SERVING or NOT_SERVING.
/// A probe that takes longer than `timeout` counts as a failure, so a hung network is noticed too.
public struct DatabaseHealthProbe: Service {
    let url: DatabaseURL
    let boards: [HealthBoard]
    let interval: Duration
    let timeout: Duration
    let logger: Logger

    public init(url: DatabaseURL, boards: [HealthBoard], interval: Duration, timeout: Duration = .seconds(2), logger: Logger) {
        self.url = url
        self.boards = boards
        self.interval = interval
        self.timeout = timeout
        self.logger = logger
    }

    public func run() async throws {
        var connection: PostgresConnection?
        var wasHealthy: Bool?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let healthy: Bool
            do {
                let current: PostgresConnection
                if let connection, !connection.isClosed {
                    current = connection
                } else {
                    current = try await Database.connect(url: url, connectTimeout: timeout, logger: logger)
                    connection = current
                }
                healthy = try await Self.ping(current, timeout: timeout, logger: logger)
            } catch {
                healthy = false
            }
            if !healthy, let stale = connection {
                connection = nil
                try? await stale.close()
            }
            for board in boards { board.setAll(healthy ? .serving : .notServing) }
            if healthy != wasHealthy {
                logger.notice("database \(healthy ? "reachable" : "unreachable"): health is \(healthy ? "SERVING" : "NOT_SERVING")")
                wasHealthy = healthy
            }
            // Sleep until the next probe, or until shutdown begins.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        try? await connection?.close()
    }

    /// `SELECT 1` raced against `timeout`; on timeout the connection is closed, which fails the query.
    static func ping(_ connection: PostgresConnection, timeout: Duration, logger: Logger) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await connection.query("SELECT 1", logger: logger)
                return true
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                try? await connection.close()
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
    }
}
