import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// An alert as stored.
struct AlertRecord: Sendable {
    var id: UUID
    var kind: String
    var status: String
    var commodity: String
    var outlet: String
    var district: String
    var submitter: String
    var observationID: String
    var observedAt: Date
    var figures: [String: Double]
    var controlID: UUID?
    var caseNumber: String?
    var outcome: String?
    var fineFen: Int64?
    var dismissReason: String?
    var createdAt: Date
    var updatedAt: Date

    var figuresJSON: String {
        let data = (try? JSONSerialization.data(withJSONObject: figures.filter { $0.value.isFinite }, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static let columns = """
        a.id, a.kind, a.status, a.commodity, a.outlet, a.district, a.submitter, a.observation_id, a.observed_at,
        a.figures::text AS figures, a.price_control_id, a.case_number, a.outcome, a.fine_fen, a.dismiss_reason, a.created_at,
        a.updated_at
        """

    static func decode(_ row: PostgresRow) throws -> AlertRecord {
        let c = row.makeRandomAccess()
        let figures = (try? JSONSerialization.jsonObject(with: Data(try c["figures"].decode(String.self).utf8))) as? [String: Double]
        return AlertRecord(
            id: try c["id"].decode(UUID.self), kind: try c["kind"].decode(String.self), status: try c["status"].decode(String.self),
            commodity: try c["commodity"].decode(String.self), outlet: try c["outlet"].decode(String.self),
            district: try c["district"].decode(String.self), submitter: try c["submitter"].decode(String.self),
            observationID: try c["observation_id"].decode(String.self), observedAt: try c["observed_at"].decode(Date.self),
            figures: figures ?? [:], controlID: try c["price_control_id"].decode(UUID?.self),
            caseNumber: try c["case_number"].decode(String?.self), outcome: try c["outcome"].decode(String?.self),
            fineFen: try c["fine_fen"].decode(Int64?.self), dismissReason: try c["dismiss_reason"].decode(String?.self),
            createdAt: try c["created_at"].decode(Date.self), updatedAt: try c["updated_at"].decode(Date.self))
    }
}

struct AlertEventRecord: Sendable {
    var action: String
    var fromStatus: String
    var toStatus: String
    var actor: String
    var actorDepartment: String
    var note: String
    var at: Date
}

/// What analysts do with an alert, and the moves each may make.
enum AlertMove: Sendable {
    case acknowledge
    case dismiss(reason: String)
    case refer(caseNumber: String)
    case recordOutcome(outcome: String, fineFen: Int64?)

    var action: String {
        switch self {
        case .acknowledge: "acknowledge"
        case .dismiss: "dismiss"
        case .refer: "refer"
        case .recordOutcome: "record_outcome"
        }
    }

    /// The status it leads to from `status`, or nil when it may not be made from there.
    func target(from status: String) -> String? {
        switch (self, status) {
        case (.acknowledge, "open"): "acknowledged"
        case (.dismiss, "open"), (.dismiss, "acknowledged"): "dismissed"
        case (.refer, "open"), (.refer, "acknowledged"): "referred"
        case (.recordOutcome, "referred"): "closed"
        default: nil
        }
    }

    var note: String {
        switch self {
        case .acknowledge: ""
        case .dismiss(let reason): reason
        case .refer(let caseNumber): "case \(caseNumber)"
        case .recordOutcome(let outcome, let fine): fine.map { "\(outcome), \($0) fen" } ?? outcome
        }
    }
}

/// `pricewatch.alerts` and their audit trail (`alert_events`, append-only).
struct AlertStore: Sendable {
    let client: DatabasePool
    let logger: Logger

    /// Applies `move` once per (caller, request id): the status change and its audit event together.
    func update(_ id: UUID, _ move: AlertMove, requestID: String, by actor: CallerIdentity) async throws
        -> (AlertRecord, replayed: Bool)
    {
        try await client.transaction(logger: logger) { connection in
            guard let alert = try await Self.fetch(id, forUpdate: true, on: connection, logger: logger) else {
                throw ServiceError.notFound("alert")
            }
            for try await (alertID, action) in try await connection.queryWhenOpen(
                "SELECT alert_id, action FROM pricewatch.alert_events WHERE actor = \(actor.caller) AND request_id = \(requestID)",
                logger: logger
            ).decode((UUID, String).self) {
                guard alertID == id, action == move.action else {
                    throw ServiceError.alreadyExists(
                        reason: "REQUEST_ID_REUSED", "request_id was already used by this caller for another change")
                }
                return (alert, true)
            }
            guard let target = move.target(from: alert.status) else {
                throw ServiceError.failedPrecondition(
                    reason: "INVALID_ALERT_TRANSITION", "an alert that is \(alert.status) cannot be changed by \(move.action)",
                    metadata: ["current_status": alert.status])
            }
            var caseNumber: String?
            var outcome: String?
            var fine: Int64?
            var dismissReason: String?
            switch move {
            case .acknowledge: break
            case .dismiss(let reason): dismissReason = reason
            case .refer(let number): caseNumber = number
            case .recordOutcome(let result, let fen): (outcome, fine) = (result, fen)
            }
            try await connection.queryWhenOpen(
                """
                UPDATE pricewatch.alerts SET status = \(target), case_number = COALESCE(\(caseNumber), case_number),
                    outcome = COALESCE(\(outcome), outcome), fine_fen = COALESCE(\(fine), fine_fen),
                    dismiss_reason = COALESCE(\(dismissReason), dismiss_reason), updated_at = now()
                WHERE id = \(id)
                """, logger: logger)
            try await connection.queryWhenOpen(
                """
                INSERT INTO pricewatch.alert_events (alert_id, district, action, from_status, to_status, actor, actor_department,
                    note, request_id)
                VALUES (\(id), \(alert.district), \(move.action), \(alert.status), \(target), \(actor.caller), \(actor.department),
                    \(move.note), \(requestID))
                """, logger: logger)
            return (try await Self.fetch(id, on: connection, logger: logger)!, false)
        }
    }

    static func fetch(_ id: UUID, forUpdate: Bool = false, on connection: PostgresConnection, logger: Logger) async throws
        -> AlertRecord?
    {
        let sql = "SELECT \(AlertRecord.columns) FROM pricewatch.alerts a WHERE a.id = $1" + (forUpdate ? " FOR UPDATE" : "")
        for try await row in try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: sql, binds: binds(id)), logger: logger) {
            return try AlertRecord.decode(row)
        }
        return nil
    }

    struct Filter: Sendable {
        var statuses: [String] = []
        var kinds: [String] = []
        var commodity: String?
        var district: String?
        var outlet: String?

        var fingerprint: String {
            [statuses.sorted().joined(separator: ","), kinds.sorted().joined(separator: ","), commodity ?? "", district ?? "",
             outlet ?? ""].joined(separator: "|")
        }
    }

    struct PageKey: Codable, Sendable {
        var createdAt: Date
        var id: UUID
    }

    /// Newest first.
    func list(_ filter: Filter, after: PageKey?, limit: Int) async throws -> [AlertRecord] {
        var sql = SQLConditions()
        if !filter.statuses.isEmpty { sql.add("a.status = ANY(\(sql.bind(filter.statuses)))") }
        if !filter.kinds.isEmpty { sql.add("a.kind = ANY(\(sql.bind(filter.kinds)))") }
        if let commodity = filter.commodity { sql.add("a.commodity = \(sql.bind(commodity))") }
        if let district = filter.district { sql.add("a.district = \(sql.bind(district))") }
        if let outlet = filter.outlet { sql.add("a.outlet = \(sql.bind(outlet))") }
        if let after { sql.add("(a.created_at, a.id) < (\(sql.bind(after.createdAt)), \(sql.bind(after.id)))") }
        let query = "SELECT \(AlertRecord.columns) FROM pricewatch.alerts a \(sql.whereClause) ORDER BY a.created_at DESC, a.id DESC LIMIT \(sql.bind(limit))"
        return try await alerts(query, sql.bindings)
    }

    /// Alerts in commit order after `cursor` (see ``FeedCursor``).
    func feed(after cursor: FeedCursor, district: String?, limit: Int) async throws -> [(AlertRecord, FeedCursor)] {
        var sql = SQLConditions()
        sql.add("(a.feed_xid, a.feed_seq) > (\(sql.bind(String(cursor.xid)))::text::xid8, \(sql.bind(cursor.seq))::int8)")
        sql.add("a.feed_xid < pg_snapshot_xmin(pg_current_snapshot())")
        if let district { sql.add("a.district = \(sql.bind(district))") }
        let query = """
            SELECT \(AlertRecord.columns), a.feed_xid::text AS xid, a.feed_seq FROM pricewatch.alerts a
            \(sql.whereClause) ORDER BY a.feed_xid, a.feed_seq LIMIT \(limit)
            """
        var found: [(AlertRecord, FeedCursor)] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger) {
            let c = row.makeRandomAccess()
            let xid = UInt64(try c["xid"].decode(String.self)) ?? 0
            found.append((try AlertRecord.decode(row), FeedCursor(xid: xid, seq: try c["feed_seq"].decode(Int64.self))))
        }
        return found
    }

    func history(of ids: [UUID]) async throws -> [UUID: [AlertEventRecord]] {
        guard !ids.isEmpty else { return [:] }
        var found: [UUID: [AlertEventRecord]] = [:]
        for try await row in try await client.query(
            """
            SELECT alert_id, action, from_status, to_status, actor, actor_department, note, created_at
            FROM pricewatch.alert_events WHERE alert_id = ANY(\(ids)) ORDER BY seq
            """, logger: logger
        ).decode((UUID, String, String, String, String, String, String, Date).self) {
            found[row.0, default: []].append(AlertEventRecord(
                action: row.1, fromStatus: row.2, toStatus: row.3, actor: row.4, actorDepartment: row.5, note: row.6, at: row.7))
        }
        return found
    }

    private func alerts(_ query: String, _ bindings: PostgresBindings) async throws -> [AlertRecord] {
        var found: [AlertRecord] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: bindings), logger: logger) {
            found.append(try AlertRecord.decode(row))
        }
        return found
    }
}
