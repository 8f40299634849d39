import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// What analysts read: series and indicators (from the day aggregates, never a scan of the
/// observations), and the observations themselves.
struct SeriesStore: Sendable {
    let client: DatabasePool
    let logger: Logger

    struct Point: Sendable, Equatable {
        var bucketStart: String
        var count: Int64
        var min: Int64
        var p10: Int64
        var median: Int64
        var p90: Int64
        var max: Int64

        /// Count, min, p10, median, p90 and max of `prices`, the percentiles as PostgreSQL's
        /// percentile_cont computes them (linear interpolation between the two nearest ranks), rounded to
        /// whole fen.
        init(bucketStart: String, prices: [Int64]) {
            let sorted = prices.sorted()
            func percentile(_ fraction: Double) -> Int64 {
                let position = fraction * Double(sorted.count - 1)
                let lower = Int(position.rounded(.down))
                let upper = Swift.min(lower + 1, sorted.count - 1)
                let low = Double(sorted[lower]), high = Double(sorted[upper])
                return Int64((low + (high - low) * (position - Double(lower))).rounded())
            }
            self.bucketStart = bucketStart
            count = Int64(sorted.count)
            min = sorted.first ?? 0
            p10 = sorted.isEmpty ? 0 : percentile(0.1)
            median = sorted.isEmpty ? 0 : percentile(0.5)
            p90 = sorted.isEmpty ? 0 : percentile(0.9)
            max = sorted.last ?? 0
        }
    }

    /// Per `bucket` ("day", "week", "month"). A district or the city: every whole China Standard Time day
    /// the range touches, from the day aggregates. An outlet: its observations in the range itself.
    ///
    /// PostgreSQL hands over each day's prices as they are stored and the percentiles are computed here:
    /// asking it for percentile_cont over the unnested prices cost 130 ms for a district's year (75,000
    /// prices, one sort through the executor); decoding the arrays and sorting each bucket here is a
    /// fraction of that, with the same figures (``Point/init(bucketStart:prices:)``).
    func series(commodity: String, district: String?, outlet: String?, from: Date, before: Date, bucket: String) async throws
        -> [Point]
    {
        var sql = SQLConditions()
        let query: String
        if let outlet {
            sql.add("o.outlet = \(sql.bind(outlet))")
            sql.add("o.commodity = \(sql.bind(commodity))")
            sql.add("o.observed_at >= \(sql.bind(from))")
            sql.add("o.observed_at < \(sql.bind(before))")
            query = """
                SELECT to_char(date_trunc(\(sql.bind(bucket)), o.observed_at AT TIME ZONE 'Asia/Shanghai'), 'YYYY-MM-DD'),
                    array_agg(o.unit_price_fen)
                FROM pricewatch.observations o \(sql.whereClause) GROUP BY 1 ORDER BY 1
                """
        } else {
            sql.add("d.commodity = \(sql.bind(commodity))")
            sql.add("d.day >= \(sql.bind(CalendarDay.of(from)))::date")
            sql.add("d.day <= \(sql.bind(CalendarDay.of(before.addingTimeInterval(-0.001))))::date")
            if let district { sql.add("d.district = \(sql.bind(district))") }
            query = """
                SELECT to_char(date_trunc(\(sql.bind(bucket)), d.day::timestamp), 'YYYY-MM-DD'), d.prices
                FROM pricewatch.daily_prices d \(sql.whereClause) ORDER BY 1
                """
        }
        // Rows come in bucket order: a bucket's prices are gathered until the next bucket starts, then
        // summarised, so only one bucket's prices are held at a time.
        var points: [Point] = []
        var current: (start: String, prices: [Int64])?
        for try await (start, prices) in try await client.query(
            PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger
        ).decode((String, Int64Array).self) where !prices.values.isEmpty {
            if current?.start == start {
                current!.prices.append(contentsOf: prices.values)
                continue
            }
            if let bucket = current { points.append(Point(bucketStart: bucket.start, prices: bucket.prices)) }
            current = (start, prices.values)
        }
        if let bucket = current { points.append(Point(bucketStart: bucket.start, prices: bucket.prices)) }
        return points
    }

    struct Indicators: Sendable {
        var commodity: String
        var district: String
        var latestMedian: Int64
        var latestDay: String
        var baseline: Int64?
        var changeVsBaseline: Double?
        var changeVs7Days: Double?
        var changeVs30Days: Double?
        var alps: SpikeIndicators.Result
        var ifpa: SpikeIndicators.Result
    }

    func indicators(commodity: String, district: String?) async throws -> [Indicators] {
        try await client.withConnection { connection in
            var sql = SQLConditions()
            sql.add("d.commodity = \(sql.bind(commodity))")
            if let district { sql.add("d.district = \(sql.bind(district))") }
            var monthly: [String: [SpikeIndicators.Month]] = [:]
            for try await (district, month, median) in try await connection.queryWhenOpen(
                PostgresQuery(unsafeSQL: """
                    SELECT d.district, to_char(d.day, 'YYYY-MM'), percentile_cont(0.5) WITHIN GROUP (ORDER BY p)
                    FROM pricewatch.daily_prices d, unnest(d.prices) AS p \(sql.whereClause) GROUP BY 1, 2 ORDER BY 1, 2
                    """, binds: sql.bindings), logger: logger
            ).decode((String, String, Double).self) {
                monthly[district, default: []].append(SpikeIndicators.Month(month, price: median))
            }
            var daily: [String: [(day: String, median: Double)]] = [:]
            for try await (district, day, median) in try await connection.queryWhenOpen(
                PostgresQuery(unsafeSQL: """
                    SELECT d.district, d.day::text, percentile_cont(0.5) WITHIN GROUP (ORDER BY p)
                    FROM pricewatch.daily_prices d, unnest(d.prices) AS p
                    \(sql.whereClause) AND d.day >= (SELECT max(day) - 40 FROM pricewatch.daily_prices d \(sql.whereClause))
                    GROUP BY 1, 2 ORDER BY 1, 2
                    """, binds: sql.bindings), logger: logger
            ).decode((String, String, Double).self) {
                daily[district, default: []].append((day, median))
            }
            var baselines: [String: Int64] = [:]
            for try await (district, price) in try await connection.queryWhenOpen(
                "SELECT district, price_fen FROM pricewatch.baselines WHERE commodity = \(commodity)", logger: logger
            ).decode((String, Int64).self) {
                baselines[district] = price
            }
            return daily.keys.sorted().compactMap { district in
                guard let days = daily[district], let latest = days.last else { return nil }
                /// The median of the latest day with prices between `back` and `back + 3` days before the latest.
                func change(back: Int) -> Double? {
                    guard let latestStart = CalendarDay.start(of: latest.day) else { return nil }
                    let newest = CalendarDay.of(latestStart.addingTimeInterval(-Double(back) * 86_400))
                    let oldest = CalendarDay.of(latestStart.addingTimeInterval(-Double(back + 3) * 86_400))
                    guard let then = days.last(where: { $0.day <= newest && $0.day >= oldest }), then.median > 0 else { return nil }
                    return latest.median / then.median - 1
                }
                let baseline = baselines[district]
                let series = monthly[district] ?? []
                return Indicators(
                    commodity: commodity, district: district, latestMedian: Int64(latest.median.rounded()), latestDay: latest.day,
                    baseline: baseline, changeVsBaseline: baseline.map { latest.median / Double($0) - 1 },
                    changeVs7Days: change(back: 7), changeVs30Days: change(back: 30),
                    alps: SpikeIndicators.alps(series), ifpa: SpikeIndicators.ifpa(series))
            }
        }
    }

    // MARK: Observations

    struct ObservationFilter: Sendable {
        var commodity: String?
        var district: String?
        var outlet: String?
        var source: String?
        var from: Date?
        var before: Date?

        var fingerprint: String {
            [commodity ?? "", district ?? "", outlet ?? "", source ?? "", from.map { "\($0.timeIntervalSince1970)" } ?? "",
             before.map { "\($0.timeIntervalSince1970)" } ?? ""].joined(separator: "|")
        }
    }

    struct PageKey: Codable, Sendable {
        var observedAt: Date
        var submitter: String
        var observationID: String
    }

    static let columns = """
        o.submitter, o.observation_id, o.commodity, o.outlet, o.price_fen, o.quantity, o.purchase_cost_fen, o.observed_at,
        o.source, o.district, o.unit_price_fen, o.unit_cost_fen, o.received_at
        """

    /// Newest observed first.
    func observations(_ filter: ObservationFilter, after: PageKey?, limit: Int) async throws -> [StoredObservation] {
        var sql = SQLConditions()
        if let commodity = filter.commodity { sql.add("o.commodity = \(sql.bind(commodity))") }
        if let district = filter.district { sql.add("o.district = \(sql.bind(district))") }
        if let outlet = filter.outlet { sql.add("o.outlet = \(sql.bind(outlet))") }
        if let source = filter.source { sql.add("o.source = \(sql.bind(source))") }
        if let from = filter.from { sql.add("o.observed_at >= \(sql.bind(from))") }
        if let before = filter.before { sql.add("o.observed_at < \(sql.bind(before))") }
        if let after {
            sql.add("""
                (o.observed_at, o.submitter, o.observation_id) < (\(sql.bind(after.observedAt)), \(sql.bind(after.submitter)), \(sql.bind(after.observationID)))
                """)
        }
        let query = """
            SELECT \(Self.columns) FROM pricewatch.observations o \(sql.whereClause)
            ORDER BY o.observed_at DESC, o.submitter DESC, o.observation_id DESC LIMIT \(sql.bind(limit))
            """
        var found: [StoredObservation] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger)
            .decode((String, String, String, String, Int64, Int64, Int64, Date, String, String, Int64, Int64, Date).self)
        {
            found.append(StoredObservation(
                observation: NewObservation(
                    submitter: row.0, observationID: row.1, commodity: row.2, outlet: row.3, priceFen: row.4, quantity: row.5,
                    purchaseCostFen: row.6, observedAt: row.7, source: row.8),
                district: row.9, unitPriceFen: row.10, unitCostFen: row.11, receivedAt: row.12))
        }
        return found
    }
}
