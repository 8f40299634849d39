import Foundation
import KangyiPlatform
import PostgresNIO

/// The figures behind "about 1,800 verified, 442 solved", for a time window.
struct CaseStatistics: Sendable {
    struct Count: Sendable {
        var state: CaseState
        var category: String
        var count: Int64
    }

    struct Durations: Sendable {
        var count: Int64
        /// Seconds; nil when nothing happened in the window.
        var median: Double?
        var p90: Double?
    }

    var counts: [Count]
    var timeToVerify: Durations
    var timeToResolve: Durations
    var satisfaction: [ReturnVisitOutcome: Int64]
}

extension CaseStore {
    /// Counts by state and category of the cases submitted in [from, to); time to verify and to resolve of
    /// the cases verified or resolved in it; reached return visits in it by satisfaction.
    func statistics(from: Date?, to: Date?) async throws -> CaseStatistics {
        var counts: [CaseStatistics.Count] = []
        for try await (state, category, count) in try await client.query(
            """
            SELECT state, category, count(*) FROM verification.cases
            WHERE (\(from)::timestamptz IS NULL OR submitted_at >= \(from)) AND (\(to)::timestamptz IS NULL OR submitted_at < \(to))
            GROUP BY state, category ORDER BY state, category
            """, logger: logger
        ).decode((String, String, Int64).self) {
            if let state = CaseState(rawValue: state) { counts.append(.init(state: state, category: category, count: count)) }
        }
        var satisfaction: [ReturnVisitOutcome: Int64] = [:]
        for try await (outcome, count) in try await client.query(
            """
            SELECT satisfaction, count(*) FROM verification.events
            WHERE action = 'return_visit' AND reached
              AND (\(from)::timestamptz IS NULL OR created_at >= \(from)) AND (\(to)::timestamptz IS NULL OR created_at < \(to))
            GROUP BY satisfaction
            """, logger: logger
        ).decode((String, Int64).self) {
            if let outcome = ReturnVisitOutcome(rawValue: outcome) { satisfaction[outcome] = count }
        }
        return CaseStatistics(
            counts: counts,
            timeToVerify: try await durations(until: "verified_at", from: from, to: to),
            timeToResolve: try await durations(until: "resolved_at", from: from, to: to),
            satisfaction: satisfaction)
    }

    /// Median and p90 of (`column` − submitted_at) over the cases whose `column` falls in the window.
    private func durations(until column: String, from: Date?, to: Date?) async throws -> CaseStatistics.Durations {
        let sql = """
            SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM \(column) - submitted_at)),
                percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM \(column) - submitted_at))
            FROM verification.cases
            WHERE \(column) IS NOT NULL AND ($1::timestamptz IS NULL OR \(column) >= $1) AND ($2::timestamptz IS NULL OR \(column) < $2)
            """
        var bindings = PostgresBindings()
        bindings.append(from, context: .default)
        bindings.append(to, context: .default)
        for try await (count, median, p90) in try await client.query(
            PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger
        ).decode((Int64, Double?, Double?).self) {
            return .init(count: count, median: median, p90: p90)
        }
        return .init(count: 0, median: nil, p90: nil)
    }
}
