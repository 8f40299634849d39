import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// One group commit of submissions: everything below runs in a single transaction, so a batch is
/// stored whole or not at all, and nobody is answered before the commit.
///
/// 1. Retries: items whose (caller, request_id) is already stored are answered with the stored row (same
///    content) or refused (REQUEST_ID_REUSED); an id twice in one batch is settled the same way.
/// 2. Repeats: each new item is linked to the earliest recent request it repeats — same phone and
///    category within the window, or near-identical text in the same category and district — or to an
///    earlier item of the same batch with the same phone and category.
/// 3. One multi-row INSERT of the new items (ON CONFLICT DO NOTHING guards a race with another replica).
/// 4. The repeated requests gain repeat counts and priority.
struct SubmissionBatches: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// Throws when the transaction failed as a whole: the ``GroupCommitter`` then commits each half on
    /// its own, so one item the database refuses fails alone.
    func commit(_ items: [NewHelpRequest]) async throws -> [Result<SubmitOutcome, any Error>] {
        try await client.transaction(logger: logger) { connection in
            try await commit(items, on: connection)
        }
    }

    private func commit(_ items: [NewHelpRequest], on connection: PostgresConnection) async throws
        -> [Result<SubmitOutcome, any Error>]
    {
        var results = [Result<SubmitOutcome, any Error>?](repeating: nil, count: items.count)

        // 1. Already stored, or a second copy within this batch.
        let stored = try await alreadyStored(items, on: connection)
        var leaders: [Int] = []
        var leaderByKey: [Key: Int] = [:]
        var followers: [(index: Int, leader: Int)] = []
        for (index, item) in items.enumerated() {
            let key = Key(item)
            if let existing = stored[index] {
                results[index] = Self.replay(existing.row, sameContent: existing.sameContent)
            } else if let leader = leaderByKey[key] {
                followers.append((index, leader))
            } else {
                leaderByKey[key] = index
                leaders.append(index)
            }
        }

        // 2. What each new item repeats. Concurrent batches (other lanes, other replicas) with the same
        //    phone and category queue behind each other here, so each sees the other's committed original.
        try await lockPhoneCategories(leaders.map { items[$0] }, on: connection)
        var repeatOf = try await repeatedRequests(leaders.map { items[$0] }, on: connection)
        var firstByPhoneCategory: [String: UUID] = [:]
        for (position, index) in leaders.enumerated() {
            let item = items[index]
            let phoneCategory = item.phone + "|" + item.category
            if repeatOf[position] == nil, let earlier = firstByPhoneCategory[phoneCategory] {
                repeatOf[position] = earlier
            }
            if firstByPhoneCategory[phoneCategory] == nil {
                firstByPhoneCategory[phoneCategory] = repeatOf[position] ?? item.id
            }
        }

        // 3. Insert.
        let inserted = try await insert(leaders.map { items[$0] }, repeatOf: repeatOf, on: connection)
        var raceLosers: [Int] = []
        for index in leaders {
            if let row = inserted[items[index].id] { results[index] = .success(.created(row)) } else { raceLosers.append(index) }
        }
        if !raceLosers.isEmpty {
            // Another replica stored the same (caller, request_id) a moment ago: answer as a retry.
            let winners = try await alreadyStored(raceLosers.map { items[$0] }, on: connection)
            for (position, index) in raceLosers.enumerated() {
                guard let existing = winners[position] else {
                    results[index] = .failure(PlatformError(description: "help request neither inserted nor found"))
                    continue
                }
                results[index] = Self.replay(existing.row, sameContent: existing.sameContent)
            }
        }
        for (index, leader) in followers {
            guard case .success(let outcome)? = results[leader] else {
                results[index] = results[leader]
                continue
            }
            let row: StoredHelpRequest
            switch outcome { case .created(let r), .replayed(let r): row = r }
            results[index] = Self.replay(row, sameContent: items[index].contentHash == items[leader].contentHash)
        }

        // 4. Raise what was repeated (only by rows this batch really inserted).
        var repeats: [UUID: Int] = [:]
        for (position, index) in leaders.enumerated() where inserted[items[index].id] != nil {
            if let original = repeatOf[position] { repeats[original, default: 0] += 1 }
        }
        try await raise(repeats, on: connection)

        return results.map { $0 ?? .failure(PlatformError(description: "submission left unanswered")) }
    }

    struct Key: Hashable {
        var caller: String
        var requestID: String
        init(_ item: NewHelpRequest) {
            caller = item.caller
            requestID = item.requestID
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

    /// For each item whose (caller, request_id) is already stored: that row, and whether the stored
    /// content hash matches this item's. Keyed by position in `items`.
    private func alreadyStored(_ items: [NewHelpRequest], on connection: PostgresConnection) async throws
        -> [Int: (row: StoredHelpRequest, sameContent: Bool)]
    {
        guard !items.isEmpty else { return [:] }
        var found: [Int: (StoredHelpRequest, Bool)] = [:]
        for try await (position, row, sameContent) in try await connection.execute(StoredLookUp(items: items), logger: logger) {
            found[position] = (row, sameContent)
        }
        return found
    }

    /// Locks each (phone, category) of the batch until the commit (see ``PostgresConnection/lockKeys``).
    private func lockPhoneCategories(_ items: [NewHelpRequest], on connection: PostgresConnection) async throws {
        try await connection.lockKeys(items.map { $0.phone + "|" + $0.category }, space: Self.lockSpace, logger: logger)
    }

    /// The first key of intake's advisory locks ("INTK"), apart from other services' locks.
    static let lockSpace: Int32 = 0x494E_544B

    /// For each item, the earliest recent original request it repeats, if any (one query for the batch).
    private func repeatedRequests(_ items: [NewHelpRequest], on connection: PostgresConnection) async throws -> [UUID?] {
        guard !items.isEmpty else { return [] }
        var repeats = [UUID?](repeating: nil, count: items.count)
        for try await (position, id) in try await connection.execute(RepeatLookUp(items: items), logger: logger) {
            repeats[position] = id
        }
        return repeats
    }

    private func insert(_ items: [NewHelpRequest], repeatOf: [UUID?], on connection: PostgresConnection) async throws
        -> [UUID: StoredHelpRequest]
    {
        guard !items.isEmpty else { return [:] }
        var inserted: [UUID: StoredHelpRequest] = [:]
        for try await stored in try await connection.execute(Insert(items: items, repeatOf: repeatOf), logger: logger) {
            inserted[stored.id] = stored
        }
        return inserted
    }

    /// Each repeated request gains its repeats and the priority they bring (capped, see ``Priority``).
    /// The rows are locked in id order first: two batches raising the same originals in different
    /// orders would otherwise deadlock.
    private func raise(_ repeats: [UUID: Int], on connection: PostgresConnection) async throws {
        guard !repeats.isEmpty else { return }
        let ids = repeats.keys.sorted { $0.uuidString < $1.uuidString }
        try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT id FROM intake.help_requests WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
                binds: binds(ids)),
            logger: logger)
        let query = PostgresQuery(
            unsafeSQL: """
                UPDATE intake.help_requests h
                SET priority = h.priority - LEAST(h.repeat_count * \(Priority.perRepeat), \(Priority.repeatCap))
                               + LEAST((h.repeat_count + r.n) * \(Priority.perRepeat), \(Priority.repeatCap)),
                    repeat_count = h.repeat_count + r.n
                FROM unnest($1::uuid[], $2::int[]) AS r(id, n)
                WHERE h.id = r.id
                """,
            binds: binds(ids, ids.map { repeats[$0]! }))
        try await connection.query(query, logger: logger)
    }
}

// The batch's three heavy statements, prepared once per connection (postgres-nio names them by type):
// parsing and planning them on every batch was about 40 % of PostgreSQL's time for a submission at light
// load. Their plans do not hinge on the values bound — every look-up is an index's first entries for
// one key — so the generic plan PostgreSQL may switch to after five executions is as good as a custom
// one (services/intake/README.md has the A/B that checked it).

/// For each item whose (caller, request_id) is already stored: its position in the batch, the row, and
/// whether the stored content hash matches the item's (``ContentHash``).
private struct StoredLookUp: PostgresPreparedStatement {
    static let sql = """
        SELECT \(HelpRequestRow.columns), k.position, h.content_hash = k.content_hash AS same_content
        FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS k(position, caller, request_id, content_hash)
        JOIN intake.help_requests h ON h.caller = k.caller AND h.request_id = k.request_id
        """
    let items: [NewHelpRequest]

    func makeBindings() throws -> PostgresBindings {
        binds(Array(0..<items.count), items.map(\.caller), items.map(\.requestID), items.map(\.contentHash))
    }

    func decodeRow(_ row: PostgresRow) throws -> (Int, StoredHelpRequest, Bool) {
        let access = row.makeRandomAccess()
        return (try access["position"].decode(Int.self), try HelpRequestRow.decode(row), try access["same_content"].decode(Bool.self))
    }
}

/// For each item, the earliest recent original request it repeats, if any.
private struct RepeatLookUp: PostgresPreparedStatement {
    static let sql = """
        SELECT b.position, m.id
        FROM (SELECT *, intake.trigrams(description) AS trigrams
              FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[])
                   AS b(position, phone, category, district, description)
              OFFSET 0) b  -- not flattened: each new text's trigrams are extracted once
        CROSS JOIN LATERAL (
            SELECT c.id FROM (
                (SELECT h.id, h.created_at FROM intake.help_requests h
                 WHERE h.phone = b.phone AND h.category = b.category AND h.repeat_of IS NULL
                   AND h.created_at > now() - interval '\(IntakeStore.repeatWindow)'
                 ORDER BY h.created_at, h.id LIMIT 1)
                UNION ALL
                -- Text is compared with a bounded number of recent requests, so the cost of a
                -- submission does not grow with the day's volume.
                (SELECT r.id, r.created_at FROM (
                    SELECT h.id, h.created_at, h.description_trigrams FROM intake.help_requests h
                    WHERE h.category = b.category AND h.district = b.district AND h.repeat_of IS NULL
                      AND h.created_at > now() - interval '\(IntakeStore.repeatWindow)'
                    ORDER BY h.created_at DESC LIMIT \(IntakeStore.textCandidates)) r
                 CROSS JOIN LATERAL (SELECT icount(r.description_trigrams & b.trigrams) AS shared) s
                 WHERE s.shared > 0 AND s.shared >= \(IntakeStore.textSimilarity)
                     * (icount(r.description_trigrams) + icount(b.trigrams) - s.shared)
                 ORDER BY r.created_at, r.id LIMIT 1)
            ) c
            ORDER BY c.created_at, c.id
            LIMIT 1) m
        """
    let items: [NewHelpRequest]

    func makeBindings() throws -> PostgresBindings {
        binds(Array(0..<items.count), items.map(\.phone), items.map(\.category), items.map(\.district), items.map(\.description))
    }

    func decodeRow(_ row: PostgresRow) throws -> (Int, UUID) { try row.decode((Int, UUID).self) }
}

/// The new items, with their tickets; ON CONFLICT DO NOTHING leaves out one another replica stored.
private struct Insert: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO intake.help_requests (id, ticket, caller, request_id, content_hash, category, district,
            phone, contact_name, address, description, latitude, longitude, special_groups, urgency,
            priority, green_channel, repeat_of)
        SELECT id, 'KY' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYMMDD')
                   || lpad(nextval('intake.ticket_seq')::text, 8, '0'),
               caller, request_id, content_hash, category, district, phone, contact_name, address,
               description, CASE WHEN located THEN latitude END, CASE WHEN located THEN longitude END,
               coalesce(string_to_array(nullif(groups, ''), ','), '{}'), urgency, priority, green, nullif(repeat_of, '')::uuid
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[], $10::text[], $11::bool[], $12::float8[], $13::float8[],
                    $14::text[], $15::text[], $16::int[], $17::bool[], $18::text[])
             AS n(id, caller, request_id, content_hash, category, district, phone, contact_name, address,
                  description, located, latitude, longitude, groups, urgency, priority, green, repeat_of)
        ON CONFLICT (caller, request_id, district) DO NOTHING
        RETURNING \(HelpRequestRow.columns)
        """
    let items: [NewHelpRequest]
    let repeatOf: [UUID?]

    func makeBindings() throws -> PostgresBindings {
        binds(
            items.map(\.id), items.map(\.caller), items.map(\.requestID), items.map(\.contentHash),
            items.map(\.category), items.map(\.district), items.map(\.phone), items.map(\.contactName),
            items.map(\.address), items.map(\.description), items.map { $0.location != nil },
            items.map { $0.location?.latitude ?? 0 }, items.map { $0.location?.longitude ?? 0 },
            items.map { $0.specialGroups.map(\.rawValue).joined(separator: ",") }, items.map(\.urgency.rawValue),
            items.map { Priority.of(urgency: $0.urgency, groups: $0.specialGroups, repeats: 0) },
            items.map { Priority.isGreenChannel($0.specialGroups) },
            repeatOf.map { $0?.uuidString ?? "" })
    }

    func decodeRow(_ row: PostgresRow) throws -> StoredHelpRequest { try HelpRequestRow.decode(row) }
}
