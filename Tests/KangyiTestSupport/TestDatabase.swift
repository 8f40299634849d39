import Foundation
import KangyiPlatform
import Logging
import PostgresNIO
import Synchronization

/// Real PostgreSQL for tests, never a mock. `make test` starts a throwaway cluster and passes its URL in
/// `KANGYI_TEST_DATABASE_URL`; a bare `swift test` starts (or reuses) the same cluster in `.data/test-pg`.
/// Every test gets a database of its own, so tests run in parallel without seeing each other's rows.
public enum TestDatabase {
    /// Warnings and worse only: test output stays readable.
    public static let logger: Logger = {
        var logger = Logger(label: "kangyi.test") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        return logger
    }()

    /// Tests run in parallel: the first one to ask starts the cluster, the rest reuse it.
    private static let startedCluster = Mutex<DatabaseURL?>(nil)

    /// The cluster's URL (its `postgres` database).
    public static func clusterURL() throws -> DatabaseURL {
        if let text = ProcessInfo.processInfo.environment["KANGYI_TEST_DATABASE_URL"], !text.isEmpty {
            guard let url = DatabaseURL(text) else {
                throw PlatformError(description: "KANGYI_TEST_DATABASE_URL is not a postgres:// URL")
            }
            return url
        }
        return try startedCluster.withLock { started in
            if let started { return started }
            let url = try EmbeddedPostgres(
                dataDirectory: repositoryRoot + "/.data/test-pg", durable: false, logger: logger
            ).start()
            started = url
            return url
        }
    }

    /// A new, empty database named after the test; its URL.
    public static func fresh(_ label: String = "t") async throws -> DatabaseURL {
        let cluster = try clusterURL()
        let name = "\(label.lowercased().filter { $0.isLetter || $0.isNumber })_\(RequestID.mint().prefix(12))"
        let connection = try await Database.connect(url: cluster, logger: logger)
        defer { Task { try? await connection.close() } }
        try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\""), logger: logger)
        return cluster.with(database: name)
    }

    /// A fresh database with the `common` schema and the given migrations applied.
    public static func migrated(_ label: String, _ migrations: [Migration] = []) async throws -> DatabaseURL {
        let url = try await fresh(label)
        try await MigrationRunner(logger: logger).apply(CommonSchema.migrations + migrations, url: url)
        return url
    }

    /// The repository's root: where Package.swift is, found from this file's path.
    public static var repositoryRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
        }
        return FileManager.default.currentDirectoryPath
    }
}

/// Runs `body` with a running pool on `url`, closing it afterwards.
public func withDatabasePool<T: Sendable>(
    _ url: DatabaseURL, poolSize: Int = 10, _ body: @Sendable (DatabasePool) async throws -> T
) async throws -> T {
    try await Database.withPool(url: url, poolSize: poolSize, logger: TestDatabase.logger, body)
}

extension DatabasePool {
    /// The server's sessions (their process ids) whose `application_name` is `name`: a pool's own
    /// connections, seen from another pool.
    public func sessions(named name: String) async throws -> Set<Int32> {
        let pids = try await scalar(
            "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity WHERE application_name = \(name)", as: [Int32].self)
        return Set(pids ?? [])
    }

    /// The first column of the first row `query` answers, or nil when it answers none: the one-value
    /// look-ups tests make (counts, flags, a figure PostgreSQL computes to compare with).
    public func scalar<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as: T.Type = Int.self) async throws -> T? {
        for try await value in try await self.query(query, logger: TestDatabase.logger).decode(T.self) { return value }
        return nil
    }
}

extension PostgresConnection {
    /// The process id of this connection's session on the server.
    public func backendPID() async throws -> Int32 {
        for try await pid in try await queryWhenOpen("SELECT pg_backend_pid()", logger: TestDatabase.logger).decode(Int32.self) {
            return pid
        }
        throw PlatformError(description: "no backend pid")
    }
}
