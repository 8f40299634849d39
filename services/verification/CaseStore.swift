import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// `verification.cases` and its audit trail: the queue, the transitions, the reads. Every write that
/// changes a case's state also writes its audit event and its intake outbox row, in one transaction.
struct CaseStore: Sendable {
    let client: DatabasePool
    let logger: Logger

    // MARK: The queue

    /// Claims the best waiting case in `states` for `actor` (or renews the live claim the actor already
    /// holds there). SKIP LOCKED lets concurrent claimers pass each other; the lease predicate is checked
    /// again on the locked row, so no two claimers ever hold one case.
    func claimNext(
        actor: String, actorDepartment: String, states: [CaseState], category: String?, district: String?,
        lease: Duration
    ) async throws -> CaseRecord? {
        let stateNames = states.map(\.rawValue)
        let seconds = lease.inSeconds
        return try await client.transaction(logger: logger) { connection in
            let renewed = try await connection.queryWhenOpen(
                """
                UPDATE verification.cases SET claim_expires_at = now() + \(seconds) * interval '1 second'
                WHERE id = (SELECT id FROM verification.cases WHERE claimed_by = \(actor) AND claim_expires_at > now()
                            AND state = ANY(\(stateNames)) ORDER BY submitted_at LIMIT 1)
                RETURNING id
                """, logger: logger)
            for try await id in renewed.decode(UUID.self) { return try await Self.fetch(id, on: connection, logger: logger) }

            let claimed = try await connection.queryWhenOpen(
                """
                WITH next AS (
                    SELECT id FROM verification.cases
                    WHERE state = ANY(\(stateNames)) AND (claim_expires_at IS NULL OR claim_expires_at <= now())
                      AND (\(category ?? "") = '' OR category = \(category ?? ""))
                      AND (\(district ?? "") = '' OR district = \(district ?? ""))
                    ORDER BY green_channel DESC, priority DESC, submitted_at, id
                    LIMIT 1 FOR UPDATE SKIP LOCKED)
                UPDATE verification.cases c
                SET claimed_by = \(actor), claim_expires_at = now() + \(seconds) * interval '1 second', updated_at = now()
                FROM next WHERE c.id = next.id
                RETURNING c.id, c.state
                """, logger: logger)
            for try await (id, state) in claimed.decode((UUID, String).self) {
                try await Self.recordEvent(
                    caseID: id, action: "claim", from: state, to: state, actor: actor, actorDepartment: actorDepartment,
                    on: connection, logger: logger)
                return try await Self.fetch(id, on: connection, logger: logger)
            }
            return nil
        }
    }

    /// Gives back a claim the actor holds.
    func release(caseID: UUID, actor: String, actorDepartment: String) async throws -> CaseRecord {
        try await client.transaction(logger: logger) { connection in
            guard let current = try await Self.fetch(caseID, forUpdate: true, on: connection, logger: logger) else {
                throw ServiceError.notFound("case")
            }
            guard current.claimHolder == actor else {
                throw ServiceError.failedPrecondition(
                    reason: "NOT_CLAIMED_BY_CALLER", "the case is not claimed by the caller",
                    metadata: ["claimed": current.claimHolder == nil ? "false" : "true"])
            }
            try await connection.queryWhenOpen(
                "UPDATE verification.cases SET claimed_by = NULL, claim_expires_at = NULL, updated_at = now() WHERE id = \(caseID)",
                logger: logger)
            try await Self.recordEvent(
                caseID: caseID, action: "release", from: current.state.rawValue, to: current.state.rawValue, actor: actor,
                actorDepartment: actorDepartment, on: connection, logger: logger)
            return try await Self.fetch(caseID, on: connection, logger: logger)!
        }
    }

    // MARK: Transitions

    /// Applies `action` once: the state move the lifecycle allows, its audit event, and (when the state
    /// changes) the outbox row that carries it to intake. A retry with the same request id returns the
    /// case as it is, `replayed`.
    func apply(_ action: CaseAction) async throws -> (CaseRecord, replayed: Bool) {
        try await client.transaction(logger: logger) { connection in
            // The row lock first: a concurrent retry of the same action waits here, then finds its event.
            guard let current = try await Self.fetch(action.caseID, forUpdate: true, on: connection, logger: logger) else {
                throw ServiceError.notFound("case")
            }
            let earlier = try await connection.queryWhenOpen(
                "SELECT case_id, action FROM verification.events WHERE actor = \(action.actor) AND request_id = \(action.requestID)",
                logger: logger)
            for try await (caseID, name) in earlier.decode((UUID, String).self) {
                guard caseID == action.caseID, name == action.move.action else {
                    throw ServiceError.alreadyExists(
                        reason: "REQUEST_ID_REUSED", "request_id was already used by this caller for another action")
                }
                return (current, true)
            }
            if let holder = current.claimHolder, holder != action.actor {
                throw ServiceError.failedPrecondition(
                    reason: "CLAIMED_BY_ANOTHER", "another staff member holds this case until its claim is released or expires",
                    metadata: ["current_state": current.state.rawValue])
            }
            let target = try CaseLifecycle.require(action.move, from: current.state)
            if let other = action.duplicateOf {
                let exists = try await connection.queryWhenOpen(
                    "SELECT 1 FROM verification.cases WHERE id = \(other)", logger: logger)
                var found = false
                for try await _ in exists { found = true }
                guard found else {
                    throw ServiceError.invalidArgument(field: "duplicate_of", reason: "UNKNOWN_CASE", "no case has this id")
                }
            }
            // Reopening (and a return visit that found nothing solved) starts the stage's timer again.
            let restartsTimer = target != current.state && (action.move == .reopen || action.move == .returnVisit(.notSolved))
            try await connection.queryWhenOpen(
                """
                UPDATE verification.cases SET
                    state = \(target.rawValue),
                    claimed_by = NULL, claim_expires_at = NULL, updated_at = now(),
                    department = COALESCE(\(action.department), department),
                    duplicate_of = COALESCE(\(action.duplicateOf), duplicate_of),
                    verified_at = CASE WHEN \(target.rawValue) = 'verified' THEN COALESCE(verified_at, now()) ELSE verified_at END,
                    resolved_at = CASE WHEN \(target.rawValue) = 'resolved' AND state <> 'resolved' THEN now() ELSE resolved_at END,
                    closed_at = CASE WHEN \(target.rawValue) = 'closed' THEN now() ELSE closed_at END,
                    verify_due_at = CASE WHEN \(restartsTimer) AND \(target.rawValue) = 'submitted'
                        THEN now() + (verification.service_level(priority, green_channel)).verify_within ELSE verify_due_at END,
                    resolve_due_at = CASE WHEN \(restartsTimer) AND \(target.rawValue) = 'assigned'
                        THEN now() + (verification.service_level(priority, green_channel)).resolve_within ELSE resolve_due_at END
                WHERE id = \(action.caseID)
                """, logger: logger)
            let outcome: ReturnVisitOutcome? = if case .returnVisit(let outcome) = action.move { outcome } else { nil }
            let eventID = try await Self.recordEvent(
                caseID: action.caseID, action: action.move.action, from: current.state.rawValue, to: target.rawValue,
                actor: action.actor, actorDepartment: action.actorDepartment, requestID: action.requestID,
                reason: action.reason, department: action.department, duplicateOf: action.duplicateOf,
                reached: outcome.map { $0 != .unreached }, satisfaction: outcome == .unreached ? nil : outcome?.rawValue,
                on: connection, logger: logger)
            if target != current.state {
                try await connection.queryWhenOpen(
                    """
                    INSERT INTO verification.intake_outbox (event_id, case_id, district, to_status)
                    VALUES (\(eventID), \(action.caseID), \(current.district), \(target.rawValue))
                    """, logger: logger)
            }
            return (try await Self.fetch(action.caseID, on: connection, logger: logger)!, false)
        }
    }

    @discardableResult
    static func recordEvent(
        caseID: UUID, action: String, from: String, to: String, actor: String, actorDepartment: String,
        requestID: String? = nil, reason: String = "", department: String? = nil, duplicateOf: UUID? = nil,
        reached: Bool? = nil, satisfaction: String? = nil, on connection: PostgresConnection, logger: Logger
    ) async throws -> UUID {
        let id = UUID()
        // The event carries its case's district (its key for Citus); no case, no event — an error, as the
        // foreign key makes it.
        let inserted = try await connection.queryWhenOpen(
            """
            INSERT INTO verification.events (id, case_id, district, action, from_state, to_state, actor, actor_department,
                request_id, reason, department, duplicate_of, reached, satisfaction)
            SELECT \(id), \(caseID), c.district, \(action), \(from), \(to), \(actor), \(actorDepartment),
                \(requestID), \(reason), \(department), \(duplicateOf), \(reached), \(satisfaction)
            FROM verification.cases c WHERE c.id = \(caseID)
            RETURNING id
            """, logger: logger)
        for try await _ in inserted { return id }
        throw PlatformError(description: "no case \(caseID) to record an event for")
    }

    // MARK: Reads

    func fetch(_ id: UUID) async throws -> CaseRecord? {
        try await client.withConnection { connection in try await Self.fetch(id, on: connection, logger: logger) }
    }

    static func fetch(_ id: UUID, forUpdate: Bool = false, on connection: PostgresConnection, logger: Logger) async throws
        -> CaseRecord?
    {
        let sql = CaseRow.select + " WHERE c.id = $1" + (forUpdate ? " FOR UPDATE OF c" : "")
        for try await row in try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: sql, binds: binds(id)), logger: logger) {
            return try CaseRow.decode(row)
        }
        return nil
    }

    /// The case's audit trail, oldest first.
    func history(of id: UUID) async throws -> [CaseEventRecord] {
        let rows = try await client.query(
            """
            SELECT id, action, from_state, to_state, actor, actor_department, created_at, reason, department,
                duplicate_of, reached, satisfaction
            FROM verification.events WHERE case_id = \(id) ORDER BY seq
            """, logger: logger)
        var events: [CaseEventRecord] = []
        for try await row in rows {
            let row = row.makeRandomAccess()
            events.append(
                CaseEventRecord(
                    id: try row["id"].decode(UUID.self), action: try row["action"].decode(String.self),
                    fromState: CaseState(rawValue: try row["from_state"].decode(String.self)) ?? .submitted,
                    toState: CaseState(rawValue: try row["to_state"].decode(String.self)) ?? .submitted,
                    actor: try row["actor"].decode(String.self),
                    actorDepartment: try row["actor_department"].decode(String.self),
                    at: try row["created_at"].decode(Date.self), reason: try row["reason"].decode(String.self),
                    department: try row["department"].decode(String?.self),
                    duplicateOf: try row["duplicate_of"].decode(UUID?.self),
                    reached: try row["reached"].decode(Bool?.self),
                    satisfaction: try row["satisfaction"].decode(String?.self).flatMap(ReturnVisitOutcome.init(rawValue:))))
        }
        return events
    }

    /// A page of cases matching `filter`, newest submission first, after `after`.
    func list(_ filter: CaseFilter, after: CasePageKey?, limit: Int) async throws -> [CaseRecord] {
        var sql = SQLConditions()
        if !filter.states.isEmpty { sql.add("c.state = ANY(\(sql.bind(filter.states.map(\.rawValue))))") }
        if let department = filter.department { sql.add("c.department = \(sql.bind(department))") }
        if let category = filter.category { sql.add("c.category = \(sql.bind(category))") }
        if let district = filter.district { sql.add("c.district = \(sql.bind(district))") }
        if filter.breachedOnly { sql.add(CaseRow.breached) }
        if let after { sql.add("(c.submitted_at, c.id) < (\(sql.bind(after.submittedAt)), \(sql.bind(after.id)))") }
        let query = CaseRow.select + " " + sql.whereClause + " ORDER BY c.submitted_at DESC, c.id DESC LIMIT \(sql.bind(limit))"
        var cases: [CaseRecord] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger) {
            cases.append(try CaseRow.decode(row))
        }
        return cases
    }
}

/// What `ListCases` filters on.
struct CaseFilter: Sendable {
    var states: [CaseState] = []
    var department: String?
    var category: String?
    var district: String?
    var breachedOnly = false

    /// Binds a page token to the filter it was issued for.
    var fingerprint: String {
        [states.map(\.rawValue).sorted().joined(separator: ","), department ?? "", category ?? "", district ?? "",
         breachedOnly ? "breached" : ""].joined(separator: "|")
    }
}

/// Where a page of cases ended.
struct CasePageKey: Codable, Sendable {
    var submittedAt: Date
    var id: UUID
}
