import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Testing

@testable import KangyiPriceWatch

/// Observations on real PostgreSQL: item-by-item refusals, idempotency, the day aggregates and exact
/// series buckets, alerts raised at ingest and worked to enforcement, controls' periods, baselines.
@Suite struct IngestAndAlertsTests {
    @Test func badItemsAreRefusedAloneAndResendsAreDuplicates() async throws {
        try await PriceWatchHarness.run("pw_ingest") { h in
            let good = observation("o-1", price: 3_000, quantity: 10)
            let response = try await h.submit([
                good, observation("o-2", price: 0), observation("o-3", commodity: "caviar", price: 100),
                observation("o-4", outlet: "NOPE", price: 100), observation("o 5", price: 100, at: Date().addingTimeInterval(3 * 86_400)),
            ])
            #expect(response.stored == 1 && response.refused == 4)
            #expect(response.results[1].violations.map(\.field) == ["observations[1].price_fen"])
            #expect(response.results[2].violations.map(\.field) == ["observations[2].commodity"])
            #expect(response.results[3].violations.map(\.field) == ["observations[3].outlet"])
            #expect(Set(response.results[4].violations.map(\.field)) == ["observations[4].observation_id", "observations[4].observed_at"])
            // A resend is a duplicate; another observation under the same id is refused; another submitter's id is its own.
            let again = try await h.submit([good, observation("o-1", price: 3_100)])
            #expect(again.results.map(\.outcome) == [.duplicate, .refused])
            #expect(again.results[1].violations.first?.reason == "OBSERVATION_ID_REUSED")
            #expect(try await h.submit([good], as: "outlet-feed-7").stored == 1)
            #expect(try await h.scalar("SELECT count(*)::int FROM pricewatch.observations") == 2)
            // Stored normalised to the commodity's unit: 3,000 fen for 10 capsules is 6,000 per 20.
            #expect(try await h.scalar("SELECT min(unit_price_fen)::int FROM pricewatch.observations") == 6_000)
            #expect(try await h.scalar("SELECT sum(count)::int FROM pricewatch.daily_prices") == 2)
            // Concurrent resends of one batch store each observation once.
            let batch = (0..<50).map { observation("c-\($0)", price: 3_000 + Int64($0)) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { _ = try await h.submit(batch, as: "feed-x") } }
                try await group.waitForAll()
            }
            #expect(try await h.scalar("SELECT count(*)::int FROM pricewatch.observations WHERE submitter = 'feed-x'") == 50)
            #expect(try await h.scalar("SELECT sum(count)::int FROM pricewatch.daily_prices") == 52)
            // One new id twice in a batch, then under another price: the first is stored, its copy is a
            // duplicate, the other refused — as if sent one by one.
            let once = observation("t-1", price: 3_000)
            let twice = try await h.submit([once, once, observation("t-1", price: 3_200)])
            #expect(twice.results.map(\.outcome) == [.stored, .duplicate, .refused])
            #expect(try await h.scalar("SELECT count(*)::int FROM pricewatch.observations WHERE observation_id = 't-1'") == 1)
        }
    }

    @Test func seriesBucketsAreExact() async throws {
        try await PriceWatchHarness.run("pw_series") { h in
            // Pork per 500 g at the wet market, on three days of the same week; and at the pharmacy (another district).
            let prices: [(Int, Int64)] = [(9, 1_000), (9, 1_200), (9, 1_400), (8, 1_100), (8, 1_300), (7, 2_000)]
            var list = prices.enumerated().map { n, entry in
                observation("p-\(n)", commodity: "pork", outlet: "WM-1", price: entry.1, quantity: 500, at: day(entry.0))
            }
            list.append(observation("p-x", commodity: "pork", outlet: "PH-1", price: 9_999, quantity: 500, at: day(8)))
            #expect(try await h.submit(list).stored == 7)
            func series(_ bucket: Kangyi_Pricewatch_V1_Bucket, district: String = "410105") async throws -> [Kangyi_Pricewatch_V1_SeriesPoint] {
                try await asCaller("analyst-1") {
                    try await h.service.getPriceSeries(
                        request: .with {
                            $0.commodity = "pork"
                            $0.district = district
                            $0.bucket = bucket
                            $0.observed = .with {
                                $0.start = Google_Protobuf_Timestamp(date: day(30, hour: 0))
                                $0.end = Google_Protobuf_Timestamp(date: Date())
                            }
                        }, context: .testing
                    ).points
                }
            }
            let daily = try await series(.day)
            #expect(daily.map(\.count) == [3, 2, 1])
            #expect(daily[0].bucketStart == CalendarDay.of(day(9)))
            // 1,000 1,200 1,400: p10 = 1,000 + 0.2 × 200 = 1,040; median 1,200; p90 1,360.
            #expect([daily[0].minFen, daily[0].p10Fen, daily[0].medianFen, daily[0].p90Fen, daily[0].maxFen] == [1_000, 1_040, 1_200, 1_360, 1_400])
            #expect([daily[1].p10Fen, daily[1].medianFen, daily[1].p90Fen] == [1_120, 1_200, 1_280])
            let monthly = try await series(.month)
            #expect(monthly.map(\.count).reduce(0, +) == 6)
            let city = try await series(.month, district: "")
            #expect(city.map(\.count).reduce(0, +) == 7 && city.map(\.maxFen).max() == 9_999)
            let bad = try await refusal {
                try await asCaller("analyst-1") {
                    try await h.service.getPriceSeries(request: .with { $0.commodity = "pork"; $0.district = "410105"; $0.outlet = "WM-1" }, context: .testing)
                }
            }
            #expect(Set(bad.violations.map(\.field)) == ["outlet", "observed"])
        }
    }

    /// A busy day's prices lie in bounded chunks, concurrent batches lose none of them, and the day's
    /// series figures are those of every observation of the day.
    @Test func aBusyDayIsKeptInBoundedChunks() async throws {
        try await PriceWatchHarness.run("pw_chunks") { h in
            let batches = (0..<10).map { b in
                (0..<500).map { n in observation("busy-\(b)-\(n)", price: 2_000 + Int64((b * 500 + n) % 997), at: day(1, hour: 9)) }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for batch in batches {
                    group.addTask {
                        let stored = try await h.submit(batch).stored
                        #expect(stored == 500)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await h.scalar("SELECT sum(count)::int FROM pricewatch.daily_prices") == 5_000)
            #expect(try await h.scalar("SELECT sum(cardinality(prices))::int FROM pricewatch.daily_prices") == 5_000)
            #expect(try await h.scalar("SELECT count(*)::int FROM pricewatch.daily_prices") ?? 0 >= 2)
            // One commit may carry several of these calls (group commit), so a chunk overfills by up to one commit.
            #expect(try await h.scalar("SELECT max(count)::int FROM pricewatch.daily_prices") ?? .max
                <= ObservationBatches.chunkSize + ObservationBatches.largestCommit)
            let point = try await asCaller("analyst-1") {
                try await h.service.getPriceSeries(
                    request: .with {
                        $0.commodity = "ibuprofen"
                        $0.district = "410102"
                        $0.bucket = .day
                        $0.observed = .with {
                            $0.start = Google_Protobuf_Timestamp(date: day(2, hour: 0))
                            $0.end = Google_Protobuf_Timestamp(date: Date())
                        }
                    }, context: .testing
                ).points
            }
            let median = try await h.scalar(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price_fen) FROM pricewatch.observations", as: Double.self)
            #expect(point.map(\.count) == [5_000] && point.first?.medianFen == median.map { Int64($0.rounded()) })
        }
    }

    /// A bucket's figures are computed by the service, not by PostgreSQL: they must be what
    /// percentile_cont says for the same prices — odd and even counts, ties, one price, wide ranges.
    @Test func bucketFiguresAreWhatPercentileContSays() async throws {
        try await PriceWatchHarness.run("pw_percentiles") { h in
            var random = SplitMix64(seed: 19)
            for size in [1, 2, 3, 7, 10, 11, 100, 1_001, 5_000] {
                let prices = (0..<size).map { _ in Int64(random.next() % (size < 50 ? 20 : 2_000_000)) + 1 }
                let point = SeriesStore.Point(bucketStart: "2020-02-01", prices: prices.shuffled(using: &random))
                let rows = try await h.client.query(
                    """
                    SELECT count(p)::int8, min(p)::int8, percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY p), max(p)::int8
                    FROM unnest(\(prices)::int8[]) AS p
                    """, logger: TestDatabase.logger)
                for try await (count, low, percentiles, high) in rows.decode((Int64, Int64, [Double], Int64).self) {
                    #expect([point.count, point.min, point.p10, point.median, point.p90, point.max]
                        == [count, low] + percentiles.map { Int64($0.rounded()) } + [high], "\(size) prices")
                }
            }
        }
    }

    @Test func alertsAreRaisedAtIngestAndWorkedToEnforcement() async throws {
        try await PriceWatchHarness.run("pw_alerts") { h in
            // A ceiling of 25 yuan per 20 capsules (ibuprofen's unit) on medicine in 中原区, from an hour ago.
            _ = try await asCaller("regulator-1") {
                try await h.service.setPriceControl(
                    request: .with {
                        $0.requestID = "ceiling-1"
                        $0.control = .with {
                            $0.kind = .ceiling
                            $0.class = .medicine
                            $0.district = "410102"
                            $0.ceilingFen = 2_500
                            $0.effective = .with { $0.start = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(-3600)) }
                        }
                    }, context: .testing)
            }
            // Before the ceiling: no alert. After: 2,500 is allowed, 2,501 is not.
            let response = try await h.submit([
                observation("a-1", price: 5_000, at: Date().addingTimeInterval(-7200)),
                observation("a-2", price: 2_500), observation("a-3", price: 2_501),
                // Bought at 1,000, sold at 1,400 (40 % over the 35 % cap, no earlier transaction).
                observation("a-4", price: 1_400, cost: 1_000),
            ])
            #expect(response.results.map { $0.alerts.map(\.kind) } == [[], [], [.aboveCeiling], [.markupOverCap]])
            let ceiling = response.results[2].alerts[0]
            #expect(ceiling.figures["ceiling_fen"] == 2_500 && ceiling.figures["unit_price_fen"] == 2_501 && !ceiling.priceControlID.isEmpty)

            let listed = try await asCaller("analyst-1") {
                try await h.service.listAlerts(request: .with { $0.statuses = [.open] }, context: .testing)
            }
            #expect(listed.alerts.count == 2)
            // The feed has both, in commit order, once no older transaction is still open anywhere in the cluster
            // (other tests share it).
            let store = AlertStore(client: h.client, logger: TestDatabase.logger)
            var feed = try await store.feed(after: .start, district: nil, limit: 10)
            for _ in 0..<100 where feed.count < 2 {
                try await Task.sleep(for: .milliseconds(100))
                feed = try await store.feed(after: .start, district: nil, limit: 10)
            }
            #expect(Set(feed.map { $0.0.id.uuidString.lowercased() }) == Set(listed.alerts.map(\.id)))

            func update(_ id: String, _ action: Kangyi_Pricewatch_V1_AlertAction, request: String = RequestID.mint(),
                        _ fill: (inout Kangyi_Pricewatch_V1_UpdateAlertRequest) -> Void = { _ in }) async throws -> Kangyi_Pricewatch_V1_UpdateAlertResponse {
                var message = Kangyi_Pricewatch_V1_UpdateAlertRequest.with {
                    $0.alertID = id
                    $0.requestID = request
                    $0.action = action
                }
                fill(&message)
                let built = message
                return try await asCaller("supervisor-1") { try await h.service.updateAlert(request: built, context: .testing) }
            }
            let caseNumber = "郑市监价〔2026〕17号"
            let refer = try await update(ceiling.id, .refer, request: "r-1") { $0.caseNumber = caseNumber }
            #expect(refer.alert.status == .referred && refer.alert.caseNumber == caseNumber)
            #expect(try await update(ceiling.id, .refer, request: "r-1") { $0.caseNumber = caseNumber }.replayed)
            let noAmount = try await refusal { try await update(ceiling.id, .recordOutcome) { $0.outcome = .fine } }
            #expect(noAmount.violations.map(\.field) == ["fine_fen"])
            let fined = try await update(ceiling.id, .recordOutcome) {
                $0.outcome = .fine
                $0.fineFen = 5_000_000
            }
            #expect(fined.alert.status == .closed && fined.alert.fineFen == 5_000_000)
            #expect(try await refusal { try await update(ceiling.id, .dismiss) { $0.reason = "late" } }.reason == "INVALID_ALERT_TRANSITION")
            let dismissed = try await update(response.results[3].alerts[0].id, .dismiss) { $0.reason = "invoice was for a smaller pack" }
            #expect(dismissed.alert.status == .dismissed)

            let record = try await asCaller("analyst-1") {
                try await h.service.getOutletRecord(request: .with { $0.outlet = "PH-1" }, context: .testing)
            }
            #expect(record.observations.count == 4)
            let history = record.alerts.first { $0.alert.id == ceiling.id }?.history.map(\.action)
            #expect(history == ["refer", "record_outcome"])
            await #expect(throws: (any Error).self) {
                _ = try await h.scalar("DELETE FROM pricewatch.alert_events RETURNING 1")
            }
        }
    }

    @Test func historyRulesBaselinesAndFreezes() async throws {
        let settings = Settings()
        try await PriceWatchHarness.run("pw_history", settings: settings) { h in
            // Before the base date (2020-01-19): bought at 100 yuan, sold at 110 per 500 g of pork.
            let base = CalendarDay.start(of: "2020-01-10")!.addingTimeInterval(36_000)
            #expect(try await h.submit([observation("h-0", commodity: "pork", outlet: "WM-1", price: 1_100, quantity: 500, cost: 1_000, at: base)]).stored == 1)
            // A baseline computed from that window; pork's threshold is 5 %.
            let baseline = try await asCaller("regulator-1") {
                try await h.service.setBaseline(
                    request: .with {
                        $0.commodity = "pork"
                        $0.district = "410105"
                        $0.computeFrom = .with {
                            $0.start = Google_Protobuf_Timestamp(date: base.addingTimeInterval(-86_400))
                            $0.end = Google_Protobuf_Timestamp(date: base.addingTimeInterval(86_400))
                        }
                    }, context: .testing)
            }
            #expect(baseline.baseline.priceFen == 1_100 && baseline.baseline.computed && baseline.baseline.observations == 1)
            // Now bought at 1,200: 10 % markup (1,320) is the seller's own; 1,321 is over it. Both are over the
            // baseline by more than 5 %.
            let now = try await h.submit([
                observation("h-1", commodity: "pork", outlet: "WM-1", price: 1_320, quantity: 500, cost: 1_200, at: Date().addingTimeInterval(-180)),
                observation("h-2", commodity: "pork", outlet: "WM-1", price: 1_321, quantity: 500, cost: 1_200, at: Date().addingTimeInterval(-120)),
                observation("h-3", commodity: "pork", outlet: "WM-1", price: 1_155, quantity: 500, at: Date().addingTimeInterval(-60)),
            ])
            #expect(now.results.map { Set($0.alerts.map(\.kind)) } == [
                [.riseOverBaseline], [.markupOverOwnHistory, .riseOverBaseline], [],
            ])
            // A freeze from now on: the stall's last price before it was 1,155.
            _ = try await asCaller("regulator-1") {
                try await h.service.setPriceControl(
                    request: .with {
                        $0.requestID = "freeze-1"
                        $0.control = .with { $0.kind = .freeze; $0.commodity = "pork" }
                    }, context: .testing)
            }
            let frozen = try await h.submit([
                observation("h-4", commodity: "pork", outlet: "WM-1", price: 1_155, quantity: 500, at: Date().addingTimeInterval(1)),
                observation("h-5", commodity: "pork", outlet: "WM-1", price: 1_156, quantity: 500, at: Date().addingTimeInterval(1)),
            ])
            // 1,156 also rises more than 5 % over the baseline of 1,100.
            #expect(frozen.results.map { Set($0.alerts.map(\.kind)) } == [[], [.riseUnderFreeze, .riseOverBaseline]])
            // The same request again is the same control.
            let retried = try await asCaller("regulator-1") {
                try await h.service.setPriceControl(
                    request: .with {
                        $0.requestID = "freeze-1"
                        $0.control = .with { $0.kind = .freeze; $0.commodity = "pork" }
                    }, context: .testing)
            }
            #expect(retried.replayed)
            let controls = try await asCaller("analyst-1") {
                try await h.service.listPriceControls(request: .init(), context: .testing)
            }
            #expect(controls.controls.map(\.kind) == [.freeze])
            let ended = try await asCaller("regulator-1") {
                try await h.service.endPriceControl(request: .with { $0.id = controls.controls[0].id }, context: .testing)
            }
            #expect(ended.control.hasEndedAt)
            #expect(try await asCaller("analyst-1") { try await h.service.listPriceControls(request: .init(), context: .testing) }.controls.isEmpty)
            let indicators = try await asCaller("analyst-1") {
                try await h.service.getIndicators(request: .with { $0.commodity = "pork" }, context: .testing)
            }
            let stall = try #require(indicators.indicators.first { $0.district == "410105" })
            #expect(stall.baselineFen == 1_100 && stall.alps.band == .insufficientHistory && stall.ifpa.band == .insufficientHistory)
            #expect(stall.latestDay == CalendarDay.of(Date()) && stall.hasChangeVsBaseline)
        }
    }

    @Test func importIsIdempotentAndReportsEveryRefusal() async throws {
        try await PriceWatchHarness.run("pw_import") { h in
            var lines = ["submitter,observation_id,commodity,outlet,price_fen,quantity,purchase_cost_fen,observed_at,source"]
            for n in 0..<2_500 {
                lines.append("hist,h\(n),rice,WM-1,\(300 + n % 7),500,,2019-\(String(format: "%02d", n % 12 + 1))-15T10:00:00+08:00,outlet_feed")
            }
            lines.append("hist,bad-1,rice,WM-1,-5,500,,2019-01-15T10:00:00+08:00,outlet_feed")
            lines.append("hist,bad-2,rice,WM-1,300,500")
            lines.append("hist,bad-3,ri\u{0}ce,WM-1,300,500,,2019-01-15T10:00:00+08:00,outlet_feed")
            let importer = PriceImport(client: h.client, logger: TestDatabase.logger)
            let text = lines
            let first = try await importer.run(lines: AsyncStreamOf(text))
            #expect(first.stored == 2_500 && first.refused == 3 && first.duplicates == 0)
            #expect(first.problems.count == 3 && first.problems[0].contains("price_fen"))
            #expect(first.problems[2].contains("INVALID_CHARACTER"))
            let second = try await importer.run(lines: AsyncStreamOf(text))
            #expect(second.stored == 0 && second.duplicates == 2_500)
            #expect(try await h.scalar("SELECT count(*)::int FROM pricewatch.observations") == 2_500)
            #expect(try await h.scalar("SELECT count(*)::int FROM pricewatch.alerts") == 0)
            #expect(try await h.scalar("SELECT count(*)::int FROM pg_inherits WHERE inhparent = 'pricewatch.observations'::regclass") == 12)
        }
    }
}

/// Lines as an async sequence (what the import reads from a file).
struct AsyncStreamOf: AsyncSequence, Sendable {
    typealias Element = String
    let lines: [String]
    init(_ lines: [String]) { self.lines = lines }

    func makeAsyncIterator() -> Iterator { Iterator(lines: lines) }

    struct Iterator: AsyncIteratorProtocol {
        let lines: [String]
        var position = 0
        mutating func next() async throws -> String? {
            guard position < lines.count else { return nil }
            defer { position += 1 }
            return lines[position]
        }
    }
}
