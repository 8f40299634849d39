import Logging
import PostgresNIO

extension PostgresConnection {
    /// The boolean a one-value query answers (`SELECT to_regclass(...) IS NOT NULL`); false when it
    /// returns no row.
    public func flag(_ query: PostgresQuery, logger: Logger) async throws -> Bool {
        for try await value in try await self.query(query, logger: logger).decode(Bool.self) { return value }
        return false
    }
}
