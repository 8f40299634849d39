import Logging
import NIOCore
import PostgresNIO

/// Builds the PostgreSQL pool from a ``DatabaseURL``. The pool (`PostgresClient`) is itself a lifecycle
/// service: run it in the process's service group before the first query.
public enum Database {
    /// - Parameters:
    ///   - sessionSettings: settings (GUCs) every connection of the pool starts with.
    ///   - eventLoopGroup: where its connections live; one loop for a pool whose users run on it
    ///     (``EventLoopTaskExecutor``).
    public static func makeClient(
        url: DatabaseURL, poolSize: Int, sessionSettings: [(String, String)] = [],
        eventLoopGroup: any EventLoopGroup = PostgresClient.defaultEventLoopGroup, logger: Logger
    ) -> PostgresClient {
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
            tls: .disable)
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(3)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(30))
        configuration.options.additionalStartupParameters = sessionSettings
        return PostgresClient(configuration: configuration, eventLoopGroup: eventLoopGroup, backgroundLogger: logger)
    }

    /// Runs `body` with a running pool on `url` (for commands and tests, outside a service group), then
    /// closes it.
    public static func withClient<T: Sendable>(
        url: DatabaseURL, poolSize: Int = 4, sessionSettings: [(String, String)] = [], logger: Logger,
        _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = makeClient(url: url, poolSize: poolSize, sessionSettings: sessionSettings, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(client)
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
