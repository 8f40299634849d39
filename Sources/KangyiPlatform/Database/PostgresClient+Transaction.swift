import Logging
import PostgresNIO

extension PostgresClient {
    /// A transaction on a connection of the pool (see ``PostgresConnection/transaction(logger:_:)``).
    public func transaction<Result: Sendable>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withConnection(isolation: isolation) { connection in
            try await connection.transaction(logger: logger, isolation: isolation, body)
        }
    }
}

extension PostgresConnection {
    /// BEGIN, `body`, COMMIT — or ROLLBACK when `body` throws, and `body`'s error rethrown as itself (so a
    /// ``ServiceError`` thrown inside reaches the caller as that error).
    ///
    /// Not postgres-nio's `withTransaction`: postgres-nio 1.33 loses a statement written to a connection
    /// that has closed (its promise is never completed, and whoever awaits it waits for ever), and that
    /// transaction's ROLLBACK after a failure caused by the database going away was such a statement: a
    /// checkpoint batch, and the upload waiting on it, hung after the database crashed until the terminal
    /// gave up (Tests/Faults/test_terminal.py). So the transaction runs on the connection's event loop,
    /// where a statement is written in the same turn as the check that the connection is open and `body`'s
    /// statements resume where their replies were read; a closed connection gets no ROLLBACK (PostgreSQL
    /// rolls back the transaction of a session that ended) and its error is `PostgresError.connectionClosed`
    /// (UNAVAILABLE, ``DatabaseErrorKind``).
    public func transaction<Result: Sendable>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop), isolation: isolation) {
            try await statementWhileOpen("BEGIN", logger: logger)
            let value: Result
            do {
                value = try await body(self)
            } catch {
                if !isClosed { _ = try? await query("ROLLBACK", logger: logger) }
                throw error
            }
            try await statementWhileOpen("COMMIT", logger: logger)
            return value
        }
    }

    /// Runs a statement without rows, or throws `PostgresError.connectionClosed` without writing it when the
    /// connection has closed. Call it on the connection's event loop: the check and the write are then one step.
    private func statementWhileOpen(_ sql: PostgresQuery, logger: Logger) async throws {
        assert(eventLoop.inEventLoop)
        guard !isClosed else { throw PostgresError.connectionClosed }
        try await query(sql, logger: logger)
    }

    /// Runs `body` on the connection's event loop once the connection is known to be open, or throws
    /// `PostgresError.connectionClosed`: the statement `body` writes first (before it suspends) then reaches
    /// an open connection, where postgres-nio answers it, failure included (see ``transaction(logger:isolation:_:)``).
    public func whenOpen<Result: Sendable>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> sending Result
    ) async throws -> sending Result {
        try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop), isolation: isolation) {
            assert(eventLoop.inEventLoop)
            guard !isClosed else { throw PostgresError.connectionClosed }
            return try await body()
        }
    }
}
