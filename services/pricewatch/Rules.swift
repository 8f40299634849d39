import Foundation
import KangyiPlatform

/// The regulators' rules, checked for each observation as it is stored: pure functions of the
/// observation and what the store looked up for its batch (see `ObservationBatches`). Thresholds are
/// compared exactly, in integers: "exceeds" means strictly above.
enum Rules {
    struct Settings: Sendable, Equatable {
        /// The seller's pre-epidemic markup is its last transaction on or before this day (China Standard Time).
        var baseDate: String
        /// The markup cap without history, in basis points (3,500 = 35 %), where no markup-cap control applies.
        var markupCapBasisPoints: Int64
        /// A robust z-score above this is a sudden jump.
        var jumpZ: Double
        /// The least number of prices in the 7-day window for a z-score.
        var jumpMinimumCount: Int

        static let defaults = Settings(baseDate: "2020-01-19", markupCapBasisPoints: 3_500, jumpZ: 3.5, jumpMinimumCount: 5)
    }

    /// A price control (`price_controls`): what the rules apply, and what analysts list.
    struct Control: Sendable {
        var id: UUID
        var kind: String
        var commodity: String?
        var commodityClass: String?
        var district: String?
        var ceilingFen: Int64?
        var maxMarkupBasisPoints: Int64?
        var effectiveFrom: Date
        var effectiveUntil: Date?
        var note = ""
        var setBy = ""
        var setByDepartment = ""
        var endedAt: Date?

        func applies(to observation: Subject) -> Bool {
            (commodity == observation.commodity || commodityClass == observation.commodityClass)
                && (district == nil || district == observation.district)
                && effectiveFrom <= observation.observedAt && (effectiveUntil.map { observation.observedAt < $0 } ?? true)
        }
    }

    /// The observation, normalised.
    struct Subject: Sendable {
        var commodity: String
        var commodityClass: String
        var district: String
        var outlet: String
        let observedAt: Date
        var unitPriceFen: Int64
        var unitCostFen: Int64
        /// The China Standard Time day of `observedAt`, worked out once: the day aggregates and the 7-day
        /// window (its rows, and each subject's days) all ask for it.
        let day: String

        init(
            commodity: String, commodityClass: String, district: String, outlet: String, observedAt: Date,
            unitPriceFen: Int64, unitCostFen: Int64
        ) {
            self.commodity = commodity
            self.commodityClass = commodityClass
            self.district = district
            self.outlet = outlet
            self.observedAt = observedAt
            self.unitPriceFen = unitPriceFen
            self.unitCostFen = unitCostFen
            day = CalendarDay.of(observedAt)
        }
    }

    /// What the store found for the subject.
    struct Context: Sendable {
        var controls: [Control] = []
        /// The seller's last transaction with a cost on or before the base date (unit price, unit cost).
        var base: (price: Int64, cost: Int64)?
        var baselineFen: Int64?
        var riseThresholdBasisPoints: Int64?
        /// For each freeze in force: the outlet's last unit price before it began.
        var frozenPrices: [UUID: Int64] = [:]
        /// The district's unit prices of the commodity over the 7 days up to the observation, summarised.
        var window: Window = []
    }

    /// The first day of the jump rule's window that ends on `day`: 7 days, `day` included.
    static func windowStart(endingOn day: String) -> String {
        guard let start = CalendarDay.start(of: day) else { return day }
        return CalendarDay.of(start.addingTimeInterval(-6 * 86_400))
    }

    /// A 7-day window's prices as the jump rule needs them, summarised once (a batch shares it between
    /// every observation of the same district, commodity and day: sorting it per observation made ingest
    /// quadratic in a busy day).
    struct Window: Sendable, ExpressibleByArrayLiteral {
        var count: Int
        var median: Double
        var mad: Double
        var meanDeviation: Double

        init(_ prices: [Int64]) { self.init(sortedChunks: [SortedPrices(prices)]) }

        /// The figures of the prices of `chunks`, each sorted, without merging them: the k-th smallest
        /// price is the least value with k + 1 prices at or below it, found by bisecting values and
        /// counting by binary search in each chunk; the k-th smallest deviation likewise, in doubled
        /// units so a median between two prices stays an integer; the deviations' sum from prefix sums.
        /// A few thousand steps a window, where selecting over the week's prices (70,000 in the bench)
        /// for every batch was a quarter of the server's CPU at ingest. All exact integers until the end.
        init(sortedChunks: [SortedPrices]) {
            let chunks = sortedChunks.filter { !$0.values.isEmpty }
            count = chunks.reduce(0) { $0 + $1.values.count }
            guard let low = chunks.compactMap(\.values.first).min(), let high = chunks.compactMap(\.values.last).max() else {
                (median, mad, meanDeviation) = (0, 0, 0)
                return
            }
            func least(in range: ClosedRange<Int64>, havingAtLeast wanted: Int, _ counted: (Int64) -> Int) -> Int64 {
                range[range.partitioningIndex { counted($0) >= wanted }]  // the range's last value always has them all
            }
            func price(_ k: Int) -> Int64 {
                least(in: low...high, havingAtLeast: k + 1) { value in chunks.reduce(0) { $0 + $1.count(atMost: value) } }
            }
            let twiceMedian = price((count - 1) / 2) + price(count / 2)
            func twiceDeviation(_ k: Int) -> Int64 {
                least(in: 0...(2 * (high - low)), havingAtLeast: k + 1) { radius in
                    // |2x − 2m| ≤ r  ⇔  ⌈(2m − r) / 2⌉ ≤ x ≤ ⌊(2m + r) / 2⌋ (>> 1 floors, negatives too).
                    chunks.reduce(0) { $0 + $1.count(atMost: (twiceMedian + radius) >> 1) - $1.count(atMost: ((twiceMedian - radius + 1) >> 1) - 1) }
                }
            }
            median = Double(twiceMedian) / 2
            mad = Double(twiceDeviation((count - 1) / 2) + twiceDeviation(count / 2)) / 4
            meanDeviation = chunks.reduce(0.0) { $0 + $1.absoluteDeviations(fromTwice: twiceMedian) } / Double(count)
        }

        init(arrayLiteral prices: Int64...) { self.init(prices) }
    }

    struct Finding: Sendable, Equatable {
        var kind: String
        var figures: [String: Double]
        var controlID: UUID?
    }

    static func check(_ subject: Subject, _ context: Context, settings: Settings) -> [Finding] {
        var findings: [Finding] = []
        let price = subject.unitPriceFen
        let inForce = context.controls.filter { $0.applies(to: subject) }

        // 1, 2. Markup, when the seller's cost is known.
        let cost = subject.unitCostFen
        if cost > 0 {
            let ratio = Double(price - cost) / Double(cost)
            if let base = context.base, base.cost > 0 {
                // (p − c) / c > (bp − bc) / bc  ⇔  (p − c) · bc > (bp − bc) · c
                if exceeds(price - cost, base.cost, base.price - base.cost, cost) {
                    findings.append(Finding(kind: "markup_over_own_history", figures: [
                        "unit_price_fen": Double(price), "unit_cost_fen": Double(cost), "markup_ratio": ratio,
                        "base_unit_price_fen": Double(base.price), "base_unit_cost_fen": Double(base.cost),
                        "base_markup_ratio": Double(base.price - base.cost) / Double(base.cost),
                    ]))
                }
            } else {
                let control = inForce.filter { $0.kind == "markup_cap" }.min { ($0.maxMarkupBasisPoints ?? 0) < ($1.maxMarkupBasisPoints ?? 0) }
                let cap = control?.maxMarkupBasisPoints ?? settings.markupCapBasisPoints
                // (p − c) / c > cap / 10,000  ⇔  (p − c) · 10,000 > cap · c
                if exceeds(price - cost, 10_000, cap, cost) {
                    findings.append(Finding(
                        kind: "markup_over_cap",
                        figures: ["unit_price_fen": Double(price), "unit_cost_fen": Double(cost), "markup_ratio": ratio,
                                  "cap": Double(cap) / 10_000],
                        controlID: control?.id))
                }
            }
        }

        // 3. Ceilings and freezes in force.
        if let ceiling = inForce.filter({ $0.kind == "ceiling" }).min(by: { ($0.ceilingFen ?? .max) < ($1.ceilingFen ?? .max) }),
            let limit = ceiling.ceilingFen, price > limit
        {
            findings.append(Finding(
                kind: "above_ceiling", figures: ["unit_price_fen": Double(price), "ceiling_fen": Double(limit)],
                controlID: ceiling.id))
        }
        let breachedFreezes = inForce.filter { $0.kind == "freeze" }.compactMap { control -> (Control, Int64)? in
            guard let frozen = context.frozenPrices[control.id], price > frozen else { return nil }
            return (control, frozen)
        }
        if let (freeze, frozen) = breachedFreezes.min(by: { $0.1 < $1.1 }) {
            findings.append(Finding(
                kind: "rise_under_freeze", figures: ["unit_price_fen": Double(price), "frozen_price_fen": Double(frozen)],
                controlID: freeze.id))
        }

        // 4. Rise over the district's baseline, above the class's threshold.
        if let baseline = context.baselineFen, baseline > 0, let threshold = context.riseThresholdBasisPoints,
            exceeds(price - baseline, 10_000, threshold, baseline)
        {
            findings.append(Finding(kind: "rise_over_baseline", figures: [
                "unit_price_fen": Double(price), "baseline_fen": Double(baseline),
                "rise": Double(price - baseline) / Double(baseline), "threshold": Double(threshold) / 10_000,
            ]))
        }

        // 5. A sudden jump against the last 7 days.
        let window = context.window
        if window.count >= settings.jumpMinimumCount, let z = robustZ(price, in: window), z > settings.jumpZ {
            findings.append(Finding(kind: "sudden_jump", figures: [
                "unit_price_fen": Double(price), "median_fen": window.median, "mad_fen": window.mad, "robust_z": min(z, 1e6),
                "window_count": Double(window.count),
            ]))
        }
        return findings
    }

    /// a · b > c · d, exactly (128-bit products).
    static func exceeds(_ a: Int64, _ b: Int64, _ c: Int64, _ d: Int64) -> Bool {
        let left = a.multipliedFullWidth(by: b)
        let right = c.multipliedFullWidth(by: d)
        return left.high != right.high ? left.high > right.high : left.low > right.low
    }

    /// The modified z-score of Iglewicz and Hoaglin: 0.6745 (x − median) / MAD. When the MAD is 0 (more
    /// than half the prices equal), the mean absolute deviation stands in (× 1.2533, its ratio to σ for a
    /// normal distribution); when that is 0 too, any price above the median is infinitely far.
    static func robustZ(_ value: Int64, in window: Window) -> Double? {
        guard window.count > 0 else { return nil }
        let x = Double(value)
        if window.mad > 0 { return 0.6745 * (x - window.median) / window.mad }
        if window.meanDeviation > 0 { return (x - window.median) / (1.253314 * window.meanDeviation) }
        return x > window.median ? .infinity : 0
    }
}

/// Prices in ascending order with their running sums: a `daily_prices` chunk as the jump rule reads it.
struct SortedPrices: Sendable, Equatable {
    let values: [Int64]
    /// `prefixSums[i]` is the sum of the first `i` values.
    let prefixSums: [Double]

    init(_ prices: [Int64]) { self.init(sorted: prices.sorted()) }

    private init(sorted: [Int64]) {
        values = sorted
        prefixSums = Self.sums(sorted)
    }

    /// These prices and `more`: the new ones sorted and merged in, one pass.
    func adding(_ more: [Int64]) -> SortedPrices {
        let added = more.sorted()
        var result: [Int64] = []
        result.reserveCapacity(values.count + added.count)
        var (i, j) = (0, 0)
        while i < values.count || j < added.count {
            if j == added.count || (i < values.count && values[i] <= added[j]) {
                result.append(values[i])
                i += 1
            } else {
                result.append(added[j])
                j += 1
            }
        }
        return SortedPrices(sorted: result)
    }

    /// How many prices are at most `value`.
    func count(atMost value: Int64) -> Int {
        values.partitioningIndex { $0 > value }
    }

    /// Σ |x − c| over the prices, for c = `twiceCentre` / 2.
    func absoluteDeviations(fromTwice twiceCentre: Int64) -> Double {
        let centre = Double(twiceCentre) / 2
        let below = count(atMost: twiceCentre >> 1)  // the prices at or below c
        let total = prefixSums[values.count]
        return (centre * Double(below) - prefixSums[below]) + (total - prefixSums[below] - centre * Double(values.count - below))
    }

    private static func sums(_ values: [Int64]) -> [Double] {
        var sums = [Double](repeating: 0, count: values.count + 1)
        for (index, value) in values.enumerated() { sums[index + 1] = sums[index] + Double(value) }
        return sums
    }
}
