import Logging
import PostgresNIO

extension PostgresConnection {
    /// BEGIN, `body`, COMMIT — or ROLLBACK when `body` throws, and `body`'s error rethrown as itself (so a
    /// ``ServiceError`` thrown inside reaches the caller as that error).
    ///
    /// Not postgres-nio's `withTransaction`, whose ROLLBACK after a failure caused by the database going
    /// away was written to the closed connection and never answered (``whenOpen(isolation:_:)``). Here BEGIN and
    /// COMMIT are written only on an open connection, a closed one gets no ROLLBACK (PostgreSQL rolls back
    /// the transaction of a session that ended), and `body` runs on the connection's event loop.
    public func transaction<Result: Sendable>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await whenOpen(isolation: isolation) {
            try await query("BEGIN", logger: logger)
            let value: Result
            do {
                value = try await body(self)
            } catch {
                if !isClosed { _ = try? await query("ROLLBACK", logger: logger) }
                throw error
            }
            try ensureOpen()
            try await query("COMMIT", logger: logger)
            return value
        }
    }
}
