import Foundation
import KangyiPlatform
import Logging
import PostgresNIO
import ServiceLifecycle

/// Watches due times: every `interval` it records each open task past its due time (once per task and
/// due time) in `tracing.overdue`, which `WatchOverdue` streams. Replicas take turns under an advisory
/// lock, so `seq` values commit in order and a cursor never skips one.
struct OverdueSweeper: Service {
    let store: TaskStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await repeatUntilShutdown(every: interval, logger: logger, failure: "overdue sweep failed") {
            let found = try await store.sweepOverdue()
            if found > 0 { logger.info("tracing tasks overdue", metadata: ["count": "\(found)"]) }
        }
    }
}

/// A missed due time, with the task as it is now.
struct OverdueRecord: Sendable {
    var seq: Int64
    var dueAt: Date
    var task: TaskRecord
}

/// `WatchOverdue` cursors: "o1:<seq>".
let OverdueCursor = SequenceCursor(prefix: "o1")

extension TaskStore {
    func sweepOverdue() async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            try await connection.queryWhenOpen("SELECT pg_advisory_xact_lock(hashtext('tracing.overdue'))", logger: logger)
            let inserted = try await connection.queryWhenOpen(
                """
                INSERT INTO tracing.overdue (task_id, person_id, due_at)
                SELECT id, person_id, due_at FROM tracing.tasks WHERE status <> 'closed' AND due_at <= now()
                ORDER BY due_at, id
                ON CONFLICT (task_id, due_at, person_id) DO NOTHING
                RETURNING seq
                """, logger: logger)
            var count = 0
            for try await _ in inserted { count += 1 }
            return count
        }
    }

    private static let overdueSelect = "SELECT o.seq AS overdue_seq, o.due_at AS missed_due_at, \(TaskRow.columns) FROM tracing.overdue o JOIN tracing.tasks t ON t.id = o.task_id"

    /// Recorded after `seq`, in order (optionally of one district).
    func overdue(after seq: Int64, district: String?, limit: Int) async throws -> [OverdueRecord] {
        try await overdue(
            Self.overdueSelect + " WHERE o.seq > $1 AND ($2 = '' OR t.district = $2) ORDER BY o.seq LIMIT $3",
            binds(seq, district ?? "", limit))
    }

    /// Recorded up to `seq` and still overdue: the task is open with the same due time.
    func stillOverdue(upTo seq: Int64, district: String?) async throws -> [OverdueRecord] {
        try await overdue(
            Self.overdueSelect + """
                 WHERE o.seq <= $1 AND ($2 = '' OR t.district = $2) AND t.status <> 'closed' AND t.due_at = o.due_at
                ORDER BY o.seq
                """, binds(seq, district ?? ""))
    }

    func lastOverdueSeq() async throws -> Int64 {
        for try await seq in try await client.query("SELECT coalesce(max(seq), 0) FROM tracing.overdue", logger: logger)
            .decode(Int64.self)
        {
            return seq
        }
        return 0
    }

    private func overdue(_ sql: String, _ bindings: PostgresBindings) async throws -> [OverdueRecord] {
        var found: [OverdueRecord] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger) {
            let c = row.makeRandomAccess()
            found.append(OverdueRecord(
                seq: try c["overdue_seq"].decode(Int64.self), dueAt: try c["missed_due_at"].decode(Date.self),
                task: try TaskRow.decode(row)))
        }
        return found
    }
}
