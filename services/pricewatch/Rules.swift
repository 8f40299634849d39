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

    /// A 7-day window's prices as the jump rule needs them, summarised once (a batch shares it between
    /// every observation of the same district, commodity and day: sorting it per observation made ingest
    /// quadratic in a busy day).
    struct Window: Sendable, ExpressibleByArrayLiteral {
        var count: Int
        var median: Double
        var mad: Double
        var meanDeviation: Double

        init(_ prices: [Int64]) { self.init(chunks: [prices]) }

        /// The figures of every price in `chunks`, in one buffer: the median is selected in place, the
        /// deviations overwrite the prices, and their median is selected in place too. (Five arrays a
        /// window before, each as long as the week's prices: a fifth of the server's CPU at ingest.)
        init(chunks: [[Int64]]) {
            var values: [Double] = []
            values.reserveCapacity(chunks.reduce(0) { $0 + $1.count })
            for chunk in chunks { for price in chunk { values.append(Double(price)) } }
            count = values.count
            (median, mad, meanDeviation) = values.withUnsafeMutableBufferPointer { buffer in
                let median = Statistics.median(inPlace: buffer)
                var total = 0.0
                for index in buffer.indices {
                    buffer[index] = abs(buffer[index] - median)
                    total += buffer[index]
                }
                return (median, Statistics.median(inPlace: buffer), buffer.isEmpty ? 0 : total / Double(buffer.count))
            }
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

enum Statistics {
    /// The median (the mean of the two middle values of an even count), found by selection, not by
    /// sorting: a busy district's 7-day window holds tens of thousands of prices, and sorting them (twice,
    /// for the MAD) was an eighth of the price-watch server's CPU at ingest.
    static func median(_ values: [Double]) -> Double {
        var values = values
        return values.withUnsafeMutableBufferPointer { median(inPlace: $0) }
    }

    /// The median of `buffer`, whose order it changes.
    static func median(inPlace buffer: UnsafeMutableBufferPointer<Double>) -> Double {
        guard !buffer.isEmpty else { return 0 }
        let middle = buffer.count / 2
        let upper = select(buffer, middle)
        guard buffer.count % 2 == 0 else { return upper }
        // After selection everything before `middle` is at most `upper`: the lower middle is their largest.
        return (UnsafeMutableBufferPointer(rebasing: buffer[..<middle]).max()! + upper) / 2
    }

    /// Rearranges `values` so that `values[k]` is the k-th smallest, with nothing larger before it and
    /// nothing smaller after, and returns it. Quickselect with a random pivot (no input makes it
    /// quadratic) and a three-way partition (runs of equal prices, the usual case, end it early).
    static func select(_ values: UnsafeMutableBufferPointer<Double>, _ k: Int) -> Double {
        var low = 0, high = values.count - 1
        while low < high {
            let pivot = values[Int.random(in: low...high)]
            var less = low, index = low, greater = high
            while index <= greater {
                if values[index] < pivot {
                    values.swapAt(less, index)
                    less += 1
                    index += 1
                } else if values[index] > pivot {
                    values.swapAt(index, greater)
                    greater -= 1
                } else {
                    index += 1
                }
            }
            // [low, less) < pivot, [less, greater] == pivot, (greater, high] > pivot.
            if k < less { high = less - 1 } else if k > greater { low = greater + 1 } else { return pivot }
        }
        return values[k]
    }
}
