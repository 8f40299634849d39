import Foundation
import KangyiPlatform
import PostgresNIO

/// The supervisors' figures. The indicator: of the contacts listed on a day (China Standard Time) in a
/// district, the share first reached within 24 hours of being listed.
struct TracingStatistics: Sendable {
    struct Day: Sendable {
        var day: String
        var district: String
        var listed: Int64
        var reachedWithin24h: Int64
        var reached: Int64
        var medianSecondsToFirstReach: Double?
        var attemptsToReach: Int64
        var overdueNow: Int64
        var symptomatic: Int64
        var converted: Int64
    }

    struct Investigator: Sendable {
        var name: String
        var calls: Int64
        var reached: Int64
    }

    var days: [Day]
    var investigators: [Investigator]
}

extension TaskStore {
    func statistics(from: Date, before: Date, district: String?) async throws -> TracingStatistics {
        try await client.withConnection { connection in
            var days: [TracingStatistics.Day] = []
            let rows = try await connection.queryWhenOpen(
                """
                SELECT to_char(listed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD') AS day, COALESCE(district, '') AS district,
                    count(*),
                    count(*) FILTER (WHERE first_reached_at <= listed_at + interval '24 hours'),
                    count(first_reached_at),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_reached_at - listed_at)),
                    COALESCE(sum(attempts_to_first_reach), 0)::int8,
                    count(*) FILTER (WHERE status <> 'closed' AND due_at < now()),
                    count(*) FILTER (WHERE symptomatic),
                    count(*) FILTER (WHERE close_reason = 'converted_to_case')
                FROM tracing.tasks
                WHERE listed_at >= \(from) AND listed_at < \(before) AND (\(district ?? "") = '' OR district = \(district ?? ""))
                GROUP BY 1, 2 ORDER BY 1, 2
                """, logger: logger)
            for try await (day, district, listed, within, reached, median, attempts, overdue, symptomatic, converted) in rows.decode(
                (String, String, Int64, Int64, Int64, Double?, Int64, Int64, Int64, Int64).self)
            {
                days.append(.init(
                    day: day, district: district, listed: listed, reachedWithin24h: within, reached: reached,
                    medianSecondsToFirstReach: median, attemptsToReach: attempts, overdueNow: overdue,
                    symptomatic: symptomatic, converted: converted))
            }
            var investigators: [TracingStatistics.Investigator] = []
            let calls = try await connection.queryWhenOpen(
                """
                SELECT a.investigator, count(*), count(*) FILTER (WHERE a.outcome = 'reached')
                FROM tracing.attempts a JOIN tracing.tasks t ON t.id = a.task_id
                WHERE a.attempted_at >= \(from) AND a.attempted_at < \(before)
                  AND (\(district ?? "") = '' OR t.district = \(district ?? ""))
                GROUP BY 1 ORDER BY 1
                """, logger: logger)
            for try await (name, count, reached) in calls.decode((String, Int64, Int64).self) {
                investigators.append(.init(name: name, calls: count, reached: reached))
            }
            return TracingStatistics(days: days, investigators: investigators)
        }
    }
}
