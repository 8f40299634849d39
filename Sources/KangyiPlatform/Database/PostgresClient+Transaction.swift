import Logging
import PostgresNIO

extension PostgresClient {
    /// `withTransaction`, but a failure of `body` is rethrown as itself (postgres-nio wraps it in a
    /// `PostgresTransactionError`), so a ``ServiceError`` thrown inside reaches the caller as that error.
    /// The transaction has been rolled back by then.
    public func transaction<Result: Sendable>(
        logger: Logger, _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError, error.rollbackError == nil { throw inner }
            throw error
        }
    }
}
