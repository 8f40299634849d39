import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// One group commit of submissions, in a single transaction: a batch is stored whole or not at all,
/// and nobody is answered before the commit. The work is one call of `intake.submit_batch`
/// (IntakeMigrations, version 7), so a batch costs three round trips — BEGIN, the call, COMMIT:
///
/// 1. Retries: an item whose (caller, request_id) is already stored, or comes twice in the batch, is
///    answered with the stored row (same content) or refused (REQUEST_ID_REUSED).
/// 2. Repeats: each new item is linked to the earliest recent request it repeats — same phone and
///    category within the window, or near-identical text in the same category and district — or to an
///    earlier item of the same batch with the same phone and category.
/// 3. One INSERT of the new items (ON CONFLICT DO NOTHING guards a race with another replica).
/// 4. The repeated requests gain repeat counts and priority.
struct SubmissionBatches: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// The first key of intake's advisory locks ("INTK"), apart from other services' locks; taken per
    /// (phone, category) inside `intake.submit_batch`.
    static let lockSpace: Int32 = 0x494E_544B

    /// Throws when the transaction failed as a whole: the ``GroupCommitter`` then commits each half on
    /// its own, so one item the database refuses fails alone.
    func commit(_ items: [NewHelpRequest]) async throws -> [Result<SubmitOutcome, any Error>] {
        let stored = try await client.transaction(logger: logger) { connection in
            var stored = [(row: StoredHelpRequest, contentHash: String)?](repeating: nil, count: items.count)
            for try await (item, row, contentHash) in try await connection.execute(SubmitBatch(items: items), logger: logger) {
                // Keys carry the district (Citus), so the same (caller, request_id) can be stored twice
                // by two replicas racing with different districts: an item's own row is its answer.
                if stored[item - 1]?.row.id != items[item - 1].id { stored[item - 1] = (row, contentHash) }
            }
            return stored
        }
        return zip(items, stored).map { item, stored in
            guard let (row, contentHash) = stored else {
                return .failure(PlatformError(description: "help request neither inserted nor found"))
            }
            return row.id == item.id ? .success(.created(row)) : Self.replay(row, sameContent: contentHash == item.contentHash)
        }
    }

    /// The answer to a retry: the original row, or a refusal when the id came back with other content.
    static func replay(_ row: StoredHelpRequest, sameContent: Bool) -> Result<SubmitOutcome, any Error> {
        guard sameContent else {
            return .failure(ServiceError.alreadyExists(
                reason: "REQUEST_ID_REUSED",
                "request_id was already used for a different help request; use a new request_id for new content"))
        }
        return .success(.replayed(row))
    }
}

/// The batch in one call, prepared once per connection (postgres-nio names it by type). Each item is
/// answered by its position (from 1) with the row stored under its (caller, request_id) and that row's
/// content hash; the item was inserted when the row's id is its own.
private struct SubmitBatch: PostgresPreparedStatement {
    static let sql = """
        SELECT b.item, \(HelpRequestRow.columns(of: "(b.request)")), (b.request).content_hash
        FROM intake.submit_batch($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::float8[], $13::float8[],
            $14::text[], $15::text[], $16::int[], $17::bool[]) AS b
        """
    let items: [NewHelpRequest]

    func makeBindings() throws -> PostgresBindings {
        binds(
            items.map(\.id), items.map(\.caller), items.map(\.requestID), items.map(\.contentHash),
            items.map(\.category), items.map(\.district), items.map(\.phone), items.map(\.contactName),
            items.map(\.address), items.map(\.description), items.map { $0.location != nil },
            items.map { $0.location?.latitude ?? 0 }, items.map { $0.location?.longitude ?? 0 },
            items.map { $0.specialGroups.map(\.rawValue).joined(separator: ",") }, items.map(\.urgency.rawValue),
            items.map { Priority.of(urgency: $0.urgency, groups: $0.specialGroups, repeats: 0) },
            items.map { Priority.isGreenChannel($0.specialGroups) })
    }

    func decodeRow(_ row: PostgresRow) throws -> (Int, StoredHelpRequest, String) {
        let access = row.makeRandomAccess()
        return (try access["item"].decode(Int.self), try HelpRequestRow.decode(row), try access["content_hash"].decode(String.self))
    }
}
