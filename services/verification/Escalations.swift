import Foundation
import KangyiPlatform
import Logging
import PostgresNIO
import ServiceLifecycle

/// Watches the service-level timers: every `interval` it records each case whose current stage ran past
/// its deadline as an escalation (once per case, timer and deadline), which `WatchEscalations` streams.
/// Safe with several replicas: sweeps take turns under an advisory lock.
struct EscalationSweeper: Service {
    let store: CaseStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await repeatUntilShutdown(every: interval, logger: logger, failure: "escalation sweep failed") {
            let found = try await store.sweepBreaches()
            if found > 0 { logger.info("service-level breaches escalated", metadata: ["count": "\(found)"]) }
        }
    }
}

/// A recorded breach of a service-level timer.
struct EscalationRecord: Sendable {
    var id: UUID
    var seq: Int64
    var timer: ServiceLevelTimer
    var dueAt: Date
    var breachedAt: Date
    var caseRecord: CaseRecord
}

extension CaseStore {
    /// Records new breaches; returns how many. The lock makes sweeps (and so `seq` values) commit in order.
    func sweepBreaches() async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            try await connection.queryWhenOpen("SELECT pg_advisory_xact_lock(hashtext('verification.escalations'))", logger: logger)
            let inserted = try await connection.queryWhenOpen(
                """
                INSERT INTO verification.escalations (case_id, district, timer, due_at)
                SELECT id, district, timer, due_at FROM (
                    SELECT id, district, 'verify' AS timer, verify_due_at AS due_at FROM verification.cases
                    WHERE state = 'submitted' AND verify_due_at <= now()
                    UNION ALL
                    SELECT id, district, 'resolve', resolve_due_at FROM verification.cases
                    WHERE state IN ('verified', 'assigned') AND resolve_due_at <= now()) AS due
                ORDER BY due_at, id
                ON CONFLICT (case_id, timer, due_at, district) DO NOTHING
                RETURNING id
                """, logger: logger)
            var count = 0
            for try await _ in inserted { count += 1 }
            return count
        }
    }

    private static let escalationSelect = """
        SELECT e.id AS escalation_id, e.seq AS escalation_seq, e.timer, e.due_at, e.created_at AS breached_at, \(CaseRow.columns)
        FROM verification.escalations e JOIN verification.cases c ON c.id = e.case_id
        """

    /// Escalations recorded after `seq`, in order.
    func escalations(after seq: Int64, limit: Int) async throws -> [EscalationRecord] {
        try await escalations(
            Self.escalationSelect + " WHERE e.seq > $1 ORDER BY e.seq LIMIT $2", binds(seq, limit))
    }

    /// Breaches still open at `seq` or before: the case is still in the stage, with the same deadline.
    func openEscalations(upTo seq: Int64) async throws -> [EscalationRecord] {
        try await escalations(
            Self.escalationSelect + """
                 WHERE e.seq <= $1 AND (
                    (e.timer = 'verify' AND c.state = 'submitted' AND c.verify_due_at = e.due_at)
                    OR (e.timer = 'resolve' AND c.state IN ('verified', 'assigned') AND c.resolve_due_at = e.due_at))
                ORDER BY e.seq
                """, binds(seq))
    }

    func lastEscalationSeq() async throws -> Int64 {
        for try await seq in try await client.query(
            "SELECT coalesce(max(seq), 0) FROM verification.escalations", logger: logger
        ).decode(Int64.self) {
            return seq
        }
        return 0
    }

    private func escalations(_ sql: String, _ bindings: PostgresBindings) async throws -> [EscalationRecord] {
        var found: [EscalationRecord] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger) {
            let columns = row.makeRandomAccess()
            found.append(
                EscalationRecord(
                    id: try columns["escalation_id"].decode(UUID.self),
                    seq: try columns["escalation_seq"].decode(Int64.self),
                    timer: ServiceLevelTimer(rawValue: try columns["timer"].decode(String.self)) ?? .verify,
                    dueAt: try columns["due_at"].decode(Date.self),
                    breachedAt: try columns["breached_at"].decode(Date.self),
                    caseRecord: try CaseRow.decode(row)))
        }
        return found
    }
}
