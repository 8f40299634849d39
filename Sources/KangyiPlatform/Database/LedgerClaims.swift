import Logging
import PostgresNIO
import Synchronization

/// How a group commit claims its keys in an exactly-once ledger (a table keyed by the idempotency key).
public enum ClaimMode: Sendable, Equatable {
    /// Every key is new: one COPY, which fails on the ledger's key if one is not.
    case copying
    /// INSERT … ON CONFLICT DO NOTHING; the claims that lost are then settled as resends or conflicts.
    case settlingUsedKeys
}

/// Runs group commits that claim their keys the cheap way when they can. Almost every batch holds only
/// new keys, and a COPY claims them for about half of what INSERT … ON CONFLICT costs PostgreSQL (a
/// speculative insertion a row). A batch with a used key (a client resending what it was not told was
/// committed) fails that COPY on the ledger's key, is rolled back and runs again ``ClaimMode/settlingUsedKeys``;
/// for a second after such a batch, batches start that way — resends come in runs, and a COPY that fails
/// on the first of them is work thrown away. The claims must be made in one order (two batches claiming
/// the same keys then cannot deadlock), whichever the mode.
public final class LedgerClaims: Sendable {
    /// The ledger's primary key: the one violation that means "a key was used".
    let constraint: String
    private let lastUsedKey = Mutex<ContinuousClock.Instant?>(nil)

    public init(constraint: String) { self.constraint = constraint }

    /// `body` in one transaction, given how to claim; at most twice (see the type).
    public func transaction<Result: Sendable>(
        on client: DatabasePool, logger: Logger, _ body: (ClaimMode, PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        if !lastUsedKey.withLock({ $0.map { .now - $0 < .seconds(1) } ?? false }) {
            do {
                return try await client.transaction(logger: logger) { try await body(.copying, $0) }
            } catch let error where DatabaseErrorKind(error) == .uniqueViolation(constraint: constraint) {
                lastUsedKey.withLock { $0 = .now }
            }
        }
        return try await client.transaction(logger: logger) { try await body(.settlingUsedKeys, $0) }
    }
}
