import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// Cases, their contacts' tasks, the investigators' queue, call attempts and closing: `tracing.cases`,
/// `tracing.tasks`, `tracing.attempts`. Each write is one transaction; retried writes (same caller and
/// request id) find what the first one did.
struct TaskStore: Sendable {
    let client: DatabasePool
    let persons: PersonStore
    let rules: Settings.TracingRules
    let logger: Logger

    var keys: PersonalDataKeys { persons.keys }

    // MARK: Cases and contacts

    struct NewCase: Sendable {
        var requestID: String
        var person: PersonDetails
        var classification: String
        var onsetDate: String?
        var source: String
        var district: String?
    }

    func createCase(_ new: NewCase, by actor: CallerIdentity) async throws -> (CaseRecord, replayed: Bool) {
        try await client.transaction(logger: logger) { connection in
            // A retry racing its first attempt waits here, then finds the case the first one made.
            try await connection.queryWhenOpen(
                "SELECT pg_advisory_xact_lock(hashtextextended(\(actor.caller + "\u{1F}" + new.requestID), 0))", logger: logger)
            if let earlier = try await Self.fetchCase(
                "WHERE created_by = $1 AND request_id = $2", binds(actor.caller, new.requestID), on: connection, logger: logger)
            {
                return (earlier, true)
            }
            let person = try await persons.resolve(new.person, on: connection)
            let id = UUID()
            try await insertCase(id: id, person: person, new, by: actor, on: connection)
            return (try await Self.fetchCase("WHERE id = $1", binds(id), on: connection, logger: logger)!, false)
        }
    }

    private func insertCase(id: UUID, person: UUID, _ new: NewCase, by actor: CallerIdentity, on connection: PostgresConnection)
        async throws
    {
        try await connection.queryWhenOpen(
            """
            INSERT INTO tracing.cases (id, index_person_id, classification, onset_date, source, district, created_by,
                created_by_department, request_id)
            VALUES (\(id), \(person), \(new.classification), \(new.onsetDate)::date, \(new.source),
                \(new.district ?? new.person.district), \(actor.caller), \(actor.department), \(new.requestID))
            """, logger: logger)
    }

    func fetchCase(_ id: UUID) async throws -> CaseRecord? {
        try await client.withConnection { try await Self.fetchCase("WHERE id = $1", binds(id), on: $0, logger: logger) }
    }

    static func fetchCase(_ clause: String, _ bindings: PostgresBindings, on connection: PostgresConnection, logger: Logger)
        async throws -> CaseRecord?
    {
        let query = PostgresQuery(unsafeSQL: CaseRecord.select + " " + clause, binds: bindings)
        for try await row in try await connection.queryWhenOpen(query, logger: logger) { return try CaseRecord.decode(row) }
        return nil
    }

    struct NewContact: Sendable {
        var person: PersonDetails
        var relation: String
        var lastExposure: String
    }

    struct AddedContact: Sendable {
        var personID: UUID
        var taskID: UUID
        var created: Bool
    }

    func addContacts(to caseID: UUID, _ contacts: [NewContact]) async throws -> [AddedContact] {
        try await client.transaction(logger: logger) { connection in
            try await addContacts(to: caseID, contacts, field: "contacts", on: connection)
        }
    }

    /// Lists each contact on the case (a person already listed keeps their task). The case's index
    /// person is not their own contact: INVALID_ARGUMENT naming the item.
    private func addContacts(to caseID: UUID, _ contacts: [NewContact], field: String, on connection: PostgresConnection)
        async throws -> [AddedContact]
    {
        guard let tracedCase = try await Self.fetchCase("WHERE id = $1 FOR SHARE", binds(caseID), on: connection, logger: logger)
        else { throw ServiceError.notFound("case") }
        var added: [AddedContact] = []
        for (index, contact) in contacts.enumerated() {
            let person = try await persons.resolve(contact.person, on: connection)
            if person == tracedCase.indexPersonID {
                throw ServiceError.invalidArgument(
                    field: "\(field)[\(index)].person", reason: "INDEX_PERSON", "the case's index person is not their own contact")
            }
            let inserted = try await connection.queryWhenOpen(
                """
                INSERT INTO tracing.tasks (id, source, case_id, person_id, relation, last_exposure, follow_up_until, district,
                    callable_from, due_at)
                VALUES (\(UUID()), 'case_contact', \(caseID), \(person), \(contact.relation), \(contact.lastExposure)::date,
                    \(contact.lastExposure)::date + \(rules.followUpDays)::integer, \(contact.person.district ?? tracedCase.district),
                    now(), now() + interval '24 hours')
                ON CONFLICT (case_id, person_id) DO NOTHING
                RETURNING id
                """, logger: logger)
            var taskID: UUID?
            for try await id in inserted.decode(UUID.self) { taskID = id }
            if let taskID {
                added.append(AddedContact(personID: person, taskID: taskID, created: true))
            } else {
                for try await id in try await connection.queryWhenOpen(
                    "SELECT id FROM tracing.tasks WHERE case_id = \(caseID) AND person_id = \(person)", logger: logger
                ).decode(UUID.self) {
                    added.append(AddedContact(personID: person, taskID: id, created: false))
                }
            }
        }
        return added
    }

    // MARK: The queue

    /// Claims the most urgent callable task for `actor` (or renews the live claim it holds): overdue first,
    /// then household contacts, then the earliest due. SKIP LOCKED lets investigators pass each other.
    func claimNext(actor: String, district: String?, lease: Duration) async throws -> TaskRecord? {
        let seconds = lease.inSeconds
        return try await client.transaction(logger: logger) { connection in
            let renewed = try await connection.queryWhenOpen(
                """
                UPDATE tracing.tasks SET claim_expires_at = now() + \(seconds) * interval '1 second'
                WHERE id = (SELECT id FROM tracing.tasks WHERE claimed_by = \(actor) AND claim_expires_at > now()
                            AND status <> 'closed' ORDER BY due_at, id LIMIT 1)
                RETURNING id
                """, logger: logger)
            for try await id in renewed.decode(UUID.self) { return try await Self.fetch(id, on: connection, logger: logger) }
            let claimed = try await connection.queryWhenOpen(
                """
                WITH next AS (
                    SELECT id FROM tracing.tasks
                    WHERE status <> 'closed' AND callable_from <= now()
                      AND (claim_expires_at IS NULL OR claim_expires_at <= now())
                      AND (\(district ?? "") = '' OR district = \(district ?? ""))
                    ORDER BY (due_at < now()) DESC, (relation IS NOT DISTINCT FROM 'household') DESC, due_at, id
                    LIMIT 1 FOR UPDATE SKIP LOCKED)
                UPDATE tracing.tasks t
                SET claimed_by = \(actor), claim_expires_at = now() + \(seconds) * interval '1 second', updated_at = now()
                FROM next WHERE t.id = next.id
                RETURNING t.id
                """, logger: logger)
            for try await id in claimed.decode(UUID.self) { return try await Self.fetch(id, on: connection, logger: logger) }
            return nil
        }
    }

    func release(taskID: UUID, actor: String) async throws -> TaskRecord {
        try await client.transaction(logger: logger) { connection in
            guard let task = try await Self.fetch(taskID, forUpdate: true, on: connection, logger: logger) else {
                throw ServiceError.notFound("task")
            }
            guard task.claimHolder == actor else {
                throw ServiceError.failedPrecondition(reason: "NOT_CLAIMED_BY_CALLER", "the task is not claimed by the caller")
            }
            try await connection.queryWhenOpen(
                "UPDATE tracing.tasks SET claimed_by = NULL, claim_expires_at = NULL, updated_at = now() WHERE id = \(taskID)",
                logger: logger)
            return try await Self.fetch(taskID, on: connection, logger: logger)!
        }
    }

    // MARK: Calls

    struct NewAttempt: Sendable {
        var taskID: UUID
        var requestID: String
        var outcome: String
        var symptoms: [String] = []
        var temperature: Int?
        var quarantine: String?
        var quarantineLocation: String?
        var namedContacts: [NewContact] = []
        /// Asked for by the investigator; otherwise a day later (or none once the window has ended).
        var nextFollowUp: Date?
        var note: String?

        var reached: Bool { outcome == "reached" }
        var symptomatic: Bool { !symptoms.isEmpty || (temperature ?? 0) >= 373 }
    }

    struct RecordedAttempt: Sendable {
        var task: TaskRecord
        var attempt: AttemptRecord
        var added: [AddedContact]
        var replayed: Bool
    }

    func record(_ new: NewAttempt, by actor: CallerIdentity) async throws -> RecordedAttempt {
        try await client.transaction(logger: logger) { connection in
            guard let task = try await Self.fetch(new.taskID, forUpdate: true, on: connection, logger: logger) else {
                throw ServiceError.notFound("task")
            }
            let earlier = try await attempts(
                "WHERE investigator = $1 AND request_id = $2", binds(actor.caller, new.requestID), on: connection)
            if let (taskID, attempt) = earlier.first {
                guard taskID == new.taskID else {
                    throw ServiceError.alreadyExists(
                        reason: "REQUEST_ID_REUSED", "request_id was already used by this caller for another task")
                }
                return RecordedAttempt(task: task, attempt: attempt, added: [], replayed: true)
            }
            try Self.requireOpen(task, for: actor)
            if !new.namedContacts.isEmpty && task.caseID == nil {
                throw ServiceError.invalidArgument(
                    field: "named_contacts", reason: "NO_CASE",
                    "a checkpoint task has no case to add contacts to; convert it to a case first")
            }
            var next: Date?
            if new.reached {
                let ends = task.followUpEnds
                if let asked = new.nextFollowUp {
                    guard asked < ends else {
                        throw ServiceError.invalidArgument(
                            field: "next_follow_up", reason: "AFTER_FOLLOW_UP_WINDOW",
                            "the follow-up window ends on \(task.followUpUntil) (China Standard Time)")
                    }
                    next = asked
                } else {
                    let tomorrow = Date().addingTimeInterval(86_400)
                    next = tomorrow < ends ? tomorrow : nil
                }
            }
            let id = UUID()
            let context = "attempt/\(id.uuidString.lowercased())/"
            try await connection.queryWhenOpen(
                """
                INSERT INTO tracing.attempts (id, task_id, person_id, outcome, investigator, investigator_department, request_id,
                    symptoms, temperature_decidegrees, quarantine, key_id, quarantine_location_sealed, note_sealed, next_follow_up)
                VALUES (\(id), \(new.taskID), \(task.personID), \(new.outcome), \(actor.caller), \(actor.department), \(new.requestID),
                    \(new.symptoms), \(new.temperature), \(new.quarantine), \(keys.current.id),
                    \(new.quarantineLocation.map { keys.seal($0, context: context + "quarantine_location") }),
                    \(new.note.map { keys.seal($0, context: context + "note") }), \(next))
                """, logger: logger)
            if new.reached {
                try await connection.queryWhenOpen(
                    """
                    UPDATE tracing.tasks SET status = 'following', attempts = attempts + 1,
                        first_reached_at = COALESCE(first_reached_at, now()),
                        attempts_to_first_reach = COALESCE(attempts_to_first_reach, attempts + 1),
                        last_reached_at = now(), symptomatic = symptomatic OR \(new.symptomatic),
                        callable_from = \(next)::timestamptz, due_at = \(next)::timestamptz + interval '24 hours',
                        claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
                    WHERE id = \(new.taskID)
                    """, logger: logger)
            } else {
                // Offered again after the retry interval; the due time (the 24-hour clock) does not move.
                try await connection.queryWhenOpen(
                    """
                    UPDATE tracing.tasks SET attempts = attempts + 1,
                        callable_from = CASE WHEN due_at IS NULL THEN NULL
                            ELSE now() + \(rules.retryAfter.inSeconds) * interval '1 second' END,
                        claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
                    WHERE id = \(new.taskID)
                    """, logger: logger)
            }
            var added: [AddedContact] = []
            if let caseID = task.caseID, !new.namedContacts.isEmpty {
                added = try await addContacts(to: caseID, new.namedContacts, field: "named_contacts", on: connection)
            }
            let stored = try await attempts("WHERE a.id = $1", binds(id), on: connection)
            return RecordedAttempt(
                task: try await Self.fetch(new.taskID, on: connection, logger: logger)!, attempt: stored[0].1, added: added,
                replayed: false)
        }
    }

    /// A task's attempts, oldest first.
    func attempts(of taskID: UUID) async throws -> [AttemptRecord] {
        try await client.withConnection { connection in
            try await attempts("WHERE a.task_id = $1 ORDER BY a.seq", binds(taskID), on: connection).map(\.1)
        }
    }

    private func attempts(_ clause: String, _ bindings: PostgresBindings, on connection: PostgresConnection) async throws
        -> [(UUID, AttemptRecord)]
    {
        let sql = """
            SELECT a.id, a.task_id, a.outcome, a.investigator, a.investigator_department, a.attempted_at, a.symptoms,
                a.temperature_decidegrees, a.quarantine, a.key_id, a.quarantine_location_sealed, a.note_sealed, a.next_follow_up
            FROM tracing.attempts a
            """ + " " + clause
        var found: [(UUID, AttemptRecord)] = []
        for try await row in try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger) {
            let c = row.makeRandomAccess()
            let id = try c["id"].decode(UUID.self)
            let keyID = try c["key_id"].decode(String.self)
            let context = "attempt/\(id.uuidString.lowercased())/"
            found.append((
                try c["task_id"].decode(UUID.self),
                AttemptRecord(
                    id: id, outcome: try c["outcome"].decode(String.self),
                    investigator: try c["investigator"].decode(String.self),
                    investigatorDepartment: try c["investigator_department"].decode(String.self),
                    attemptedAt: try c["attempted_at"].decode(Date.self), symptoms: try c["symptoms"].decode([String].self),
                    temperature: try c["temperature_decidegrees"].decode(Int?.self),
                    quarantine: try c["quarantine"].decode(String?.self),
                    quarantineLocation: try c["quarantine_location_sealed"].decode(Data?.self).map {
                        try keys.open($0, keyID: keyID, context: context + "quarantine_location")
                    },
                    note: try c["note_sealed"].decode(Data?.self).map { try keys.open($0, keyID: keyID, context: context + "note") },
                    nextFollowUp: try c["next_follow_up"].decode(Date?.self))))
        }
        return found
    }

    // MARK: Closing

    struct Closing: Sendable {
        var taskID: UUID
        var requestID: String
        var reason: String
        /// For `converted_to_case`.
        var classification: String?
        var onsetDate: String?
    }

    func close(_ closing: Closing, by actor: CallerIdentity) async throws -> (TaskRecord, CaseRecord?, replayed: Bool) {
        try await client.transaction(logger: logger) { connection in
            guard let task = try await Self.fetch(closing.taskID, forUpdate: true, on: connection, logger: logger) else {
                throw ServiceError.notFound("task")
            }
            if task.isClosed && task.closedBy == actor.caller && task.closeRequestID == closing.requestID {
                let converted = try await task.convertedCaseID.asyncMap {
                    try await Self.fetchCase("WHERE id = $1", binds($0), on: connection, logger: logger)
                }
                return (task, converted ?? nil, true)
            }
            try Self.requireOpen(task, for: actor)
            var convertedCase: CaseRecord?
            switch closing.reason {
            case "quarantine_completed":
                guard task.firstReachedAt != nil else {
                    throw ServiceError.failedPrecondition(
                        reason: "NEVER_REACHED", "a person never reached cannot have completed quarantine under follow-up")
                }
                guard Date() >= task.followUpEnds else {
                    throw ServiceError.failedPrecondition(
                        reason: "FOLLOW_UP_WINDOW_OPEN", "the follow-up window runs until \(task.followUpUntil)",
                        metadata: ["follow_up_until": task.followUpUntil])
                }
            case "lost_to_follow_up":
                let days = try await unansweredDays(task, on: connection)
                guard days >= rules.lostAfterDays else {
                    throw ServiceError.failedPrecondition(
                        reason: "NOT_ENOUGH_UNANSWERED_DAYS",
                        "unanswered calls on \(days) day(s) since the person was last reached; \(rules.lostAfterDays) needed",
                        metadata: ["unanswered_days": "\(days)", "required": "\(rules.lostAfterDays)"])
                }
            default:  // converted_to_case
                let id = UUID()
                let new = NewCase(
                    requestID: "convert:" + closing.requestID, person: PersonDetails(),
                    classification: closing.classification ?? "suspected", onsetDate: closing.onsetDate,
                    source: "task \(task.id.uuidString.lowercased())", district: task.district)
                try await insertCase(id: id, person: task.personID, new, by: actor, on: connection)
                convertedCase = try await Self.fetchCase("WHERE id = $1", binds(id), on: connection, logger: logger)
            }
            try await connection.queryWhenOpen(
                """
                UPDATE tracing.tasks SET status = 'closed', close_reason = \(closing.reason), closed_at = now(),
                    closed_by = \(actor.caller), close_request_id = \(closing.requestID),
                    converted_case_id = \(convertedCase?.id), callable_from = NULL, due_at = NULL,
                    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
                WHERE id = \(closing.taskID)
                """, logger: logger)
            return (try await Self.fetch(closing.taskID, on: connection, logger: logger)!, convertedCase, false)
        }
    }

    /// Different China Standard Time days with an unanswered call since the person was last reached.
    private func unansweredDays(_ task: TaskRecord, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.queryWhenOpen(
            """
            SELECT count(DISTINCT (attempted_at AT TIME ZONE 'Asia/Shanghai')::date)::integer FROM tracing.attempts
            WHERE task_id = \(task.id) AND outcome <> 'reached' AND attempted_at > COALESCE(\(task.lastReachedAt)::timestamptz, '-infinity')
            """, logger: logger)
        for try await days in rows.decode(Int.self) { return days }
        return 0
    }

    /// Closed tasks take no more calls; a task another investigator holds is theirs until released.
    private static func requireOpen(_ task: TaskRecord, for actor: CallerIdentity) throws {
        if task.isClosed {
            throw ServiceError.failedPrecondition(
                reason: "TASK_CLOSED", "the task is closed", metadata: ["close_reason": task.closeReason ?? ""])
        }
        if let holder = task.claimHolder, holder != actor.caller {
            throw ServiceError.failedPrecondition(
                reason: "CLAIMED_BY_ANOTHER", "another investigator holds this task until it is released or the claim expires")
        }
    }

    // MARK: Reads

    func fetch(_ id: UUID) async throws -> TaskRecord? {
        try await client.withConnection { try await Self.fetch(id, on: $0, logger: logger) }
    }

    static func fetch(_ id: UUID, forUpdate: Bool = false, on connection: PostgresConnection, logger: Logger) async throws
        -> TaskRecord?
    {
        let sql = TaskRow.select + " WHERE t.id = $1" + (forUpdate ? " FOR UPDATE" : "")
        for try await row in try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: sql, binds: binds(id)), logger: logger) {
            return try TaskRow.decode(row)
        }
        return nil
    }

    struct TaskFilter: Sendable {
        var statuses: [String] = []
        var district: String?
        var investigator: String?
        var dueBefore: Date?
        var overdueOnly = false
        var caseID: UUID?

        var fingerprint: String {
            [statuses.sorted().joined(separator: ","), district ?? "", investigator ?? "",
             dueBefore.map { "\($0.timeIntervalSince1970)" } ?? "", overdueOnly ? "overdue" : "",
             caseID?.uuidString ?? ""].joined(separator: "|")
        }
    }

    struct TaskPageKey: Codable, Sendable {
        var listedAt: Date
        var id: UUID
    }

    /// Newest listed first.
    func list(_ filter: TaskFilter, after: TaskPageKey?, limit: Int) async throws -> [TaskRecord] {
        var sql = SQLConditions()
        if !filter.statuses.isEmpty { sql.add("t.status = ANY(\(sql.bind(filter.statuses)))") }
        if let district = filter.district { sql.add("t.district = \(sql.bind(district))") }
        if let investigator = filter.investigator {
            sql.add("t.claimed_by = \(sql.bind(investigator)) AND t.claim_expires_at > now()")
        }
        if let dueBefore = filter.dueBefore { sql.add("t.due_at < \(sql.bind(dueBefore))") }
        if filter.overdueOnly { sql.add("t.status <> 'closed' AND t.due_at < now()") }
        if let caseID = filter.caseID { sql.add("t.case_id = \(sql.bind(caseID))") }
        if let after { sql.add("(t.listed_at, t.id) < (\(sql.bind(after.listedAt)), \(sql.bind(after.id)))") }
        let query = TaskRow.select + " " + sql.whereClause + " ORDER BY t.listed_at DESC, t.id DESC LIMIT \(sql.bind(limit))"
        var tasks: [TaskRecord] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger) {
            tasks.append(try TaskRow.decode(row))
        }
        return tasks
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
