import Logging
import NIOCore
import PostgresNIO

/// Builds the PostgreSQL pool from a ``DatabaseURL``. The pool (``DatabasePool``) is itself a lifecycle
/// service: run it in the process's service group before the first query.
public enum Database {
    /// A pool of `makeClient`'s configuration that replaces itself when the database returns from an
    /// outage (``DatabasePool``); `pools` is where the health probe finds it.
    public static func makePool(
        url: DatabaseURL, poolSize: Int, sessionSettings: [(String, String)] = [],
        eventLoopGroup: any EventLoopGroup = PostgresClient.defaultEventLoopGroup, holdsConnections: Bool = false,
        registeringIn pools: DatabasePools? = nil, logger: Logger
    ) -> DatabasePool {
        let pool = DatabasePool(logger: logger) {
            makeClient(
                url: url, poolSize: poolSize, sessionSettings: sessionSettings, eventLoopGroup: eventLoopGroup,
                holdsConnections: holdsConnections, logger: logger)
        }
        pools?.add(pool)
        return pool
    }

    /// - Parameters:
    ///   - sessionSettings: settings (GUCs) every connection of the pool starts with.
    ///   - eventLoopGroup: where its connections live; one loop for a pool whose users run on it
    ///     (``EventLoopTaskExecutor``).
    ///   - holdsConnections: opens all `poolSize` connections and keeps them, with no idle timeout and no
    ///     keep-alive query, for a pool leased at every commit (a group committer's): postgres-nio then
    ///     schedules no timer when a connection is leased or returned. Otherwise every return schedules
    ///     one or two and the next lease cancels them, each a task on Swift's pool and a wake-up of other
    ///     threads (intake README, item 17). An idle connection still carries traffic: the server sends
    ///     TCP keep-alives on it (``serverKeepAlive``), which keeps it open through NAT and connection
    ///     tracking, as the keep-alive query did.
    static func makeClient(
        url: DatabaseURL, poolSize: Int, sessionSettings: [(String, String)] = [],
        eventLoopGroup: any EventLoopGroup = PostgresClient.defaultEventLoopGroup, holdsConnections: Bool = false,
        logger: Logger
    ) -> PostgresClient {
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
            tls: .disable)
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = holdsConnections ? poolSize : 0
        configuration.options.connectTimeout = .seconds(3)
        configuration.options.keepAliveBehavior = holdsConnections ? nil : .init(frequency: .seconds(30))
        configuration.options.additionalStartupParameters = sessionSettings + (holdsConnections ? serverKeepAlive : [])
        return PostgresClient(configuration: configuration, eventLoopGroup: eventLoopGroup, backgroundLogger: logger)
    }

    /// TCP keep-alives the server sends on a connection idle for 30 s, every 10 s, giving up after 3.
    static let serverKeepAlive = [("tcp_keepalives_idle", "30"), ("tcp_keepalives_interval", "10"), ("tcp_keepalives_count", "3")]

    /// Runs `body` with a running pool on `url` (for commands and tests, outside a service group), then
    /// closes it.
    public static func withPool<T: Sendable>(
        url: DatabaseURL, poolSize: Int = 4, sessionSettings: [(String, String)] = [], logger: Logger,
        _ body: @Sendable (DatabasePool) async throws -> T
    ) async throws -> T {
        let pool = makePool(url: url, poolSize: poolSize, sessionSettings: sessionSettings, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await pool.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(pool)
        }
    }

    /// One connection outside the pool, for migrations' advisory lock and the health probe.
    public static func connect(url: DatabaseURL, connectTimeout: Duration = .seconds(3), logger: Logger)
        async throws -> PostgresConnection
    {
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
            tls: .disable)
        configuration.options.connectTimeout = .nanoseconds(Int64(connectTimeout.components.seconds) * 1_000_000_000)
        return try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
    }
}
