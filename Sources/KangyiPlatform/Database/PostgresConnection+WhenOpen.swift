import Logging
import NIOCore
import PostgresNIO

/// postgres-nio 1.33 loses a statement written to a connection that has closed: the write fails inside
/// NIO, its promise is never completed, and whoever awaits it waits for ever. (Seen when the database
/// crashed under load: a checkpoint batch's ROLLBACK, and the upload waiting on it, hung until the terminal
/// gave up; Tests/Faults/test_terminal.py.) The cure is to write only after seeing the connection open, in
/// the same turn of its event loop — nothing can close it in between.
extension PostgresConnection {
    /// Runs `body` on the connection's event loop once the connection is known to be open, or throws
    /// `PostgresError.connectionClosed` (UNAVAILABLE, ``DatabaseErrorKind``): the statement `body` writes
    /// before it first suspends reaches an open connection, and is answered, failure included. Statements
    /// after a suspension go through ``queryWhenOpen(_:logger:file:line:)`` or check again with ``ensureOpen()``;
    /// `body`'s replies resume on the loop.
    public func whenOpen<Result: Sendable>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> sending Result
    ) async throws -> sending Result {
        try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop), isolation: isolation) {
            try ensureOpen()
            return try await body()
        }
    }

    /// Throws `PostgresError.connectionClosed` when the connection has closed. Call it inside ``whenOpen(isolation:_:)``,
    /// right before a statement: on the connection's loop the check and the write are one step.
    public func ensureOpen() throws {
        assert(eventLoop.inEventLoop)
        guard !isClosed else { throw PostgresError.connectionClosed }
    }

    /// `query`, written only to an open connection (else `PostgresError.connectionClosed`, UNAVAILABLE):
    /// how every statement on a leased connection is sent, so that none waits for ever on a closed one —
    /// a connection can close between two statements of a transaction (the database's fast shutdown ends
    /// sessions idle in a transaction). Its rows are read on the connection's loop.
    @discardableResult
    public func queryWhenOpen(
        _ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> PostgresRowSequence {
        try await whenOpen { try await self.query(query, logger: logger, file: file, line: line) }
    }
}
