import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// Listing with filters and keyset pages, and the change feed behind WatchHelpRequests.
struct HelpRequestFilter: Sendable, Equatable {
    var statuses: [HelpRequestStatus] = []
    var category: String?
    var district: String?
    var specialGroup: SpecialGroup?
    var createdFrom: Date?
    var createdBefore: Date?
    var newestFirst = false

    /// Stable text of the filter, bound into page tokens so a token cannot be replayed on other filters.
    var fingerprint: String {
        [statuses.map(\.rawValue).sorted().joined(separator: ","), category ?? "", district ?? "",
         specialGroup?.rawValue ?? "", createdFrom.map { "\($0.timeIntervalSince1970)" } ?? "",
         createdBefore.map { "\($0.timeIntervalSince1970)" } ?? "", newestFirst ? "new" : "prio"]
            .joined(separator: "|")
    }
}

/// Where the previous page ended: the sort key of its last row.
struct PageKey: Sendable, Equatable, Codable {
    var green: Bool
    var priority: Int
    var createdAtMicros: Int64
    var id: UUID
}

extension IntakeStore {
    func list(_ filter: HelpRequestFilter, after: PageKey?, limit: Int) async throws -> [StoredHelpRequest] {
        var sql = SQLConditions()
        if !filter.statuses.isEmpty { sql.add("status = ANY(\(sql.bind(filter.statuses.map(\.rawValue)))::text[])") }
        if let category = filter.category { sql.add("category = \(sql.bind(category))") }
        if let district = filter.district { sql.add("district = \(sql.bind(district))") }
        if let group = filter.specialGroup { sql.add("\(sql.bind(group.rawValue)) = ANY(special_groups)") }
        if let from = filter.createdFrom { sql.add("created_at >= \(sql.bind(from))") }
        if let before = filter.createdBefore { sql.add("created_at < \(sql.bind(before))") }
        let order: String
        if filter.newestFirst {
            if let after {
                sql.add("(created_at, id) < (to_timestamp(\(sql.bind(after.createdAtMicros))::float8 / 1e6), \(sql.bind(after.id)))")
            }
            order = "created_at DESC, id DESC"
        } else {
            if let after {
                sql.add("""
                    (NOT green_channel, -priority, created_at, id) > \
                    (NOT \(sql.bind(after.green)), -\(sql.bind(after.priority))::int, \
                    to_timestamp(\(sql.bind(after.createdAtMicros))::float8 / 1e6), \(sql.bind(after.id)))
                    """)
            }
            order = "green_channel DESC, priority DESC, created_at, id"
        }
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT \(HelpRequestRow.columns) FROM intake.help_requests \(sql.whereClause)
                ORDER BY \(order) LIMIT \(limit)
                """,
            binds: sql.bindings)
        var rows: [StoredHelpRequest] = []
        for try await row in try await client.query(query, logger: logger) {
            rows.append(try HelpRequestRow.decode(row))
        }
        return rows
    }

    /// Rows changed after `cursor` whose transactions are all finished, in feed order.
    func changes(after cursor: FeedCursor, limit: Int) async throws -> [(StoredHelpRequest, FeedCursor)] {
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT \(HelpRequestRow.columns), change_xid::text AS xid, change_seq
                FROM intake.help_requests
                WHERE (change_xid, change_seq) > ($1::text::xid8, $2)
                  AND change_xid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY change_xid, change_seq
                LIMIT \(limit)
                """,
            binds: binds(String(cursor.xid), cursor.seq))
        var changes: [(StoredHelpRequest, FeedCursor)] = []
        for try await row in try await client.query(query, logger: logger) {
            let access = row.makeRandomAccess()
            let xid = UInt64(try access["xid"].decode(String.self)) ?? 0
            changes.append((try HelpRequestRow.decode(row), FeedCursor(xid: xid, seq: try access["change_seq"].decode(Int64.self))))
        }
        return changes
    }

    /// Moves the public status, once per transition id; see ``Lifecycle``.
    func transition(id: UUID, transitionID: String, to status: HelpRequestStatus, actor: String, reason: String)
        async throws -> (StoredHelpRequest, replayed: Bool)
    {
        try await client.transaction(logger: logger) { connection in
            let earlier = try await connection.queryWhenOpen(
                "SELECT help_request_id, to_status FROM intake.status_transitions WHERE transition_id = \(transitionID)",
                logger: logger)
            for try await (requestID, toStatus) in earlier.decode((UUID, String).self) {
                guard requestID == id, toStatus == status.rawValue else {
                    throw ServiceError.alreadyExists(
                        reason: "TRANSITION_ID_REUSED", "transition_id was already used for another transition")
                }
                guard let row = try await Self.row(id: id, on: connection, logger: logger) else {
                    throw ServiceError.notFound("help request")
                }
                return (row, true)
            }
            guard let current = try await Self.row(id: id, forUpdate: true, on: connection, logger: logger) else {
                throw ServiceError.notFound("help request")
            }
            guard Lifecycle.allows(from: current.status, to: status) else {
                throw ServiceError.failedPrecondition(
                    reason: "TRANSITION_NOT_ALLOWED",
                    "a \(current.status.rawValue) help request cannot become \(status.rawValue)",
                    metadata: ["current_status": current.status.rawValue, "requested_status": status.rawValue])
            }
            try await connection.queryWhenOpen(
                "UPDATE intake.help_requests SET status = \(status.rawValue) WHERE id = \(id)", logger: logger)
            try await connection.queryWhenOpen(
                """
                INSERT INTO intake.status_transitions (transition_id, help_request_id, district, from_status, to_status, actor, reason)
                VALUES (\(transitionID), \(id), \(current.district), \(current.status.rawValue), \(status.rawValue), \(actor), \(reason))
                """, logger: logger)
            guard let updated = try await Self.row(id: id, on: connection, logger: logger) else {
                throw ServiceError.notFound("help request")
            }
            return (updated, false)
        }
    }

    static func row(id: UUID, forUpdate: Bool = false, on connection: PostgresConnection, logger: Logger) async throws
        -> StoredHelpRequest?
    {
        let sql = "SELECT \(HelpRequestRow.columns) FROM intake.help_requests WHERE id = $1\(forUpdate ? " FOR UPDATE" : "")"
        for try await row in try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: sql, binds: binds(id)), logger: logger) {
            return try HelpRequestRow.decode(row)
        }
        return nil
    }
}
