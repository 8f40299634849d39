import Foundation
import KangyiPlatform
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The day partitions of `checkpoint.vehicle_logs` (days of China Standard Time): every day from the
/// retention period's start to ``daysAhead`` days ahead exists; older ones are dropped, with their
/// ledger rows. Run by the first batch that needs it and then hourly; replicas take turns under an
/// advisory lock.
struct PartitionKeeper: Service {
    let client: DatabasePool
    let retentionDays: Int
    let logger: Logger
    var interval: Duration = .seconds(3600)
    /// The days [first, end) whose partitions the last round left in place.
    private let covered = Coverage()

    init(client: DatabasePool, retentionDays: Int, logger: Logger, interval: Duration = .seconds(3600)) {
        self.client = client
        self.retentionDays = retentionDays
        self.logger = logger
        self.interval = interval
    }

    final class Coverage: Sendable {
        let days = Mutex<Range<Date>?>(nil)
    }

    /// Whether `date`'s partition is known to exist.
    func covers(_ date: Date) -> Bool { covered.days.withLock { $0?.contains(date) ?? false } }

    /// Days ahead of today that always have a partition (terminals' clocks may run up to a day ahead).
    static let daysAhead = 3

    func run() async throws {
        // The first batch of the process makes what it needs (IngestBatches), so the first round waits an
        // interval: a start-up during a database outage leaves nothing here waiting on the pool.
        await cancelWhenGracefulShutdown { try? await Task.sleep(for: interval) }
        guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
        await repeatUntilShutdown(every: interval, logger: logger, failure: "partition maintenance failed") {
            try await maintain()
        }
    }

    /// Creates the missing partitions and drops expired ones; returns (created, dropped) names.
    @discardableResult
    func maintain(now: Date = Date()) async throws -> (created: [String], dropped: [String]) {
        try await client.transaction(logger: logger) { connection in
            try await connection.queryWhenOpen("SELECT pg_advisory_xact_lock(hashtext('checkpoint.partitions'))", logger: logger)
            var existing: Set<String> = []
            let rows = try await connection.queryWhenOpen(
                """
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'checkpoint.vehicle_logs'::regclass
                """, logger: logger)
            for try await name in rows.decode(String.self) { existing.insert(name) }

            let today = Self.day(of: now)
            let first = Self.calendar.date(byAdding: .day, value: -retentionDays, to: today)!
            var created: [String] = []
            var day = first
            while day <= Self.calendar.date(byAdding: .day, value: Self.daysAhead, to: today)! {
                let name = Self.name(of: day)
                if !existing.contains(name) {
                    let next = Self.calendar.date(byAdding: .day, value: 1, to: day)!
                    try await connection.queryWhenOpen(
                        PostgresQuery(unsafeSQL: """
                            CREATE TABLE checkpoint.\(name) PARTITION OF checkpoint.vehicle_logs
                            FOR VALUES FROM ('\(Self.literal(day))') TO ('\(Self.literal(next))')
                            """),
                        logger: logger)
                    created.append(name)
                }
                day = Self.calendar.date(byAdding: .day, value: 1, to: day)!
            }
            let oldest = Self.name(of: first)
            let dropped = existing.filter { $0.hasPrefix("vehicle_logs_") && $0 < oldest }.sorted()
            for name in dropped {
                try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: "DROP TABLE checkpoint.\(name)"), logger: logger)
            }
            try await connection.queryWhenOpen(
                "DELETE FROM checkpoint.log_sequences WHERE observed_at < \(first)", logger: logger)
            let end = Self.calendar.date(byAdding: .day, value: Self.daysAhead + 1, to: today)!
            covered.days.withLock { $0 = first..<end }
            if !created.isEmpty || !dropped.isEmpty {
                logger.info(
                    "vehicle log partitions maintained",
                    metadata: ["created": "\(created.count)", "dropped": "\(dropped.joined(separator: ","))"])
            }
            return (created, dropped)
        }
    }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .chinaStandard
        return calendar
    }()

    static func day(of date: Date) -> Date { calendar.startOfDay(for: date) }

    /// vehicle_logs_20261122
    static func name(of day: Date) -> String {
        let parts = calendar.dateComponents([.year, .month, .day], from: day)
        return String(format: "vehicle_logs_%04d%02d%02d", parts.year!, parts.month!, parts.day!)
    }

    /// '2026-11-22 00:00:00+08'
    static func literal(_ day: Date) -> String {
        let parts = calendar.dateComponents([.year, .month, .day], from: day)
        return String(format: "%04d-%02d-%02d 00:00:00+08", parts.year!, parts.month!, parts.day!)
    }
}
