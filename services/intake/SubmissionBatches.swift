import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// One group commit of submissions, in a single transaction: a batch is stored whole or not at all,
/// and nobody is answered before the commit. The work is one round trip: a CALL of
/// `intake.submit_batch_committed` (IntakeMigrations, version 8), which runs `intake.submit_batch`
/// (version 7) and commits before it answers:
///
/// 1. Retries: an item whose (caller, request_id) is already stored, or comes twice in the batch, is
///    answered with the stored row (same content) or refused (REQUEST_ID_REUSED).
/// 2. Repeats: each new item is linked to the earliest recent request it repeats — same phone and
///    category within the window, or near-identical text in the same category and district — or to an
///    earlier item of the same batch with the same phone and category.
/// 3. One INSERT of the new items (ON CONFLICT DO NOTHING guards a race with another replica).
/// 4. The repeated requests gain repeat counts and priority.
struct SubmissionBatches: Sendable {
    let client: DatabasePool
    let logger: Logger

    /// The first key of intake's advisory locks ("INTK"), apart from other services' locks; taken per
    /// (phone, category) inside `intake.submit_batch`.
    static let lockSpace: Int32 = 0x494E_544B

    /// Throws when the transaction failed as a whole: the ``GroupCommitter`` then commits each half on
    /// its own, so one item the database refuses fails alone.
    func commit(_ items: [NewHelpRequest]) async throws -> [Result<SubmitOutcome, any Error>] {
        try await client.withConnection { connection in
            var answers = [SubmitBatch.Answer?](repeating: nil, count: items.count)
            // Only on an open connection: postgres-nio would lose it on a closed one (whenOpen).
            let rows = try await connection.whenOpen { try await connection.execute(SubmitBatch(items: items), logger: logger) }
            for try await batch in rows {
                for answer in batch { answers[answer.item - 1] = answer }
            }
            // A retry's answer is the whole row stored earlier: read after the commit (retries are rare).
            let replayed = answers.compactMap { $0 }.filter { $0.created == nil }.map(\.id)
            var earlier: [UUID: StoredHelpRequest] = [:]
            if !replayed.isEmpty {
                let rows = try await connection.queryWhenOpen(
                    "SELECT \(unescaped: HelpRequestRow.columns) FROM intake.help_requests WHERE id = ANY(\(replayed))",
                    logger: logger)
                for try await row in rows {
                    let request = try HelpRequestRow.decode(row)
                    earlier[request.id] = request
                }
            }
            return zip(items, answers).map { item, answer in
                guard let answer else {
                    return .failure(PlatformError(description: "help request neither inserted nor found"))
                }
                if let created = answer.created { return .success(.created(created)) }
                guard let row = earlier[answer.id] else {
                    return .failure(PlatformError(description: "help request \(answer.id) answered but not found"))
                }
                return Self.replay(row, sameContent: answer.contentHash == item.contentHash)
            }
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

/// The batch in one CALL, prepared once per connection (postgres-nio names it by type). Its one row holds
/// an answer per item by position (from 1): the row stored under the item's (caller, request_id) and its
/// content hash. The item was inserted when the row's id is its own; the row then comes back as what the
/// item sent plus what the table and the batch made (ticket, status, priority, repeat link and count,
/// times), so it is answered whole without a read.
private struct SubmitBatch: PostgresPreparedStatement {
    static let sql = """
        CALL intake.submit_batch_committed($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::float8[], $13::float8[],
            $14::text[], $15::text[], $16::int[], $17::bool[], NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
        """
    let items: [NewHelpRequest]

    /// One item's answer: the id and content hash of the row stored under its (caller, request_id), and
    /// that row whole when the item created it (a retry's row is read after the commit).
    struct Answer {
        var item: Int
        var id: UUID
        var contentHash: String
        var created: StoredHelpRequest?
    }

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

    func decodeRow(_ row: PostgresRow) throws -> [Answer] {
        let (positions, ids, tickets, statuses, priorities, repeatOfs, repeatCounts, createdAts, updatedAts, hashes) =
            try row.decode(([Int], [UUID], [String], [String], [Int], [String], [Int], [Date], [Date], [String]).self)
        let counts = [ids.count, tickets.count, statuses.count, priorities.count, repeatOfs.count, repeatCounts.count,
                      createdAts.count, updatedAts.count, hashes.count]
        guard counts.allSatisfy({ $0 == positions.count }) else {
            throw PlatformError(description: "intake.submit_batch_committed answered arrays of different lengths")
        }
        // A position outside the batch answers nobody (its item is then "neither inserted nor found").
        return positions.indices.compactMap { i in
            guard items.indices.contains(positions[i] - 1) else { return nil }
            let item = items[positions[i] - 1]
            let created = ids[i] != item.id ? nil : StoredHelpRequest(
                id: item.id, ticket: tickets[i], category: item.category, district: item.district, phone: item.phone,
                contactName: item.contactName, address: item.address, description: item.description,
                location: item.location, specialGroups: item.specialGroups, urgency: item.urgency,
                status: HelpRequestStatus(rawValue: statuses[i]) ?? .submitted, priority: priorities[i],
                greenChannel: Priority.isGreenChannel(item.specialGroups), repeatOf: UUID(uuidString: repeatOfs[i]),
                repeatCount: repeatCounts[i], createdAt: createdAts[i], updatedAt: updatedAts[i])
            return Answer(item: positions[i], id: ids[i], contentHash: hashes[i], created: created)
        }
    }
}
