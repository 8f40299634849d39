import Logging
import PostgresNIO

extension PostgresConnection {
    /// Transaction-scoped advisory locks on each distinct key, in `space` (a service's own first key, so
    /// services' locks never meet), taken in one order so two transactions locking overlapping keys
    /// cannot deadlock. Released by the commit. A statement after this one sees what any earlier holder
    /// of the same keys committed.
    public func lockKeys(_ keys: [String], space: Int32, logger: Logger) async throws {
        guard !keys.isEmpty else { return }
        try await query(
            """
            SELECT pg_advisory_xact_lock(\(space), key)
            FROM (SELECT DISTINCT hashtext(k) AS key FROM unnest(\(keys)::text[]) AS k ORDER BY 1) AS keys
            """, logger: logger)
    }
}
