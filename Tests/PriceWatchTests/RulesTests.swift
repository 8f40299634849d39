import Foundation
import KangyiTestSupport
import Testing

@testable import KangyiPriceWatch

/// Each rule with exact numbers at and around its threshold ("exceeds" is strictly above).
@Suite struct RulesTests {
    let now = Date()

    func subject(price: Int64, cost: Int64 = 0, commodityClass: String = "medicine", district: String = "410102") -> Rules.Subject {
        Rules.Subject(
            commodity: "ibuprofen", commodityClass: commodityClass, district: district, outlet: "OUT-1", observedAt: now,
            unitPriceFen: price, unitCostFen: cost)
    }

    func kinds(_ subject: Rules.Subject, _ context: Rules.Context = .init()) -> [String] {
        Rules.check(subject, context, settings: .defaults).map(\.kind)
    }

    func control(_ kind: String, ceiling: Int64? = nil, markup: Int64? = nil, district: String? = nil,
                 from: TimeInterval = -3600, until: TimeInterval? = nil, commodityClass: String? = nil) -> Rules.Control {
        Rules.Control(
            id: UUID(), kind: kind, commodity: commodityClass == nil ? "ibuprofen" : nil, commodityClass: commodityClass,
            district: district, ceilingFen: ceiling, maxMarkupBasisPoints: markup,
            effectiveFrom: now.addingTimeInterval(from), effectiveUntil: until.map { now.addingTimeInterval($0) })
    }

    @Test func markupOverTheSellersOwnPreEpidemicMarkup() {
        // Before: bought at 100, sold at 110 (10 %). Now bought at 200.
        let base = Rules.Context(base: (price: 110, cost: 100))
        #expect(kinds(subject(price: 220, cost: 200), base) == [])  // 10 %: not above
        #expect(kinds(subject(price: 221, cost: 200), base) == ["markup_over_own_history"])  // 10.5 %
        let finding = Rules.check(subject(price: 221, cost: 200), base, settings: .defaults)[0]
        #expect(finding.figures["markup_ratio"] == 0.105 && finding.figures["base_markup_ratio"] == 0.1)
        // Without a cost the rule cannot apply.
        #expect(kinds(subject(price: 999), base) == [])
    }

    @Test func markupCapWithoutHistoryAndACapControl() {
        #expect(kinds(subject(price: 135, cost: 100)) == [])  // 35 %
        #expect(kinds(subject(price: 136, cost: 100)) == ["markup_over_cap"])
        let capped = Rules.Context(controls: [control("markup_cap", markup: 1_500)])  // 15 % in force
        #expect(kinds(subject(price: 115, cost: 100), capped) == [])
        let found = Rules.check(subject(price: 116, cost: 100), capped, settings: .defaults)
        #expect(found.map(\.kind) == ["markup_over_cap"] && found[0].figures["cap"] == 0.15)
        // A cap of another district, or one that ended, does not apply: the default 35 % does.
        let elsewhere = Rules.Context(controls: [control("markup_cap", markup: 1_500, district: "410105")])
        #expect(kinds(subject(price: 130, cost: 100), elsewhere) == [])
        let ended = Rules.Context(controls: [control("markup_cap", markup: 1_500, from: -7200, until: -3600)])
        #expect(kinds(subject(price: 130, cost: 100), ended) == [])
    }

    @Test func ceilingsAndFreezesInForce() {
        let ceiling = control("ceiling", ceiling: 500, commodityClass: "medicine")
        #expect(kinds(subject(price: 500), .init(controls: [ceiling])) == [])
        #expect(kinds(subject(price: 501), .init(controls: [ceiling])) == ["above_ceiling"])
        // Not yet in force, or for another class.
        #expect(kinds(subject(price: 900), .init(controls: [control("ceiling", ceiling: 500, from: 60)])) == [])
        #expect(kinds(subject(price: 900), .init(controls: [control("ceiling", ceiling: 500, commodityClass: "pork")])) == [])
        let freeze = control("freeze")
        #expect(kinds(subject(price: 300), .init(controls: [freeze], frozenPrices: [freeze.id: 300])) == [])
        let rise = Rules.check(subject(price: 301), .init(controls: [freeze], frozenPrices: [freeze.id: 300]), settings: .defaults)
        #expect(rise.map(\.kind) == ["rise_under_freeze"] && rise[0].controlID == freeze.id)
        // No price before the freeze: nothing to compare with.
        #expect(kinds(subject(price: 301), .init(controls: [freeze])) == [])
    }

    @Test func riseOverBaselineByClassThreshold() {
        let medicine = Rules.Context(baselineFen: 1_000, riseThresholdBasisPoints: 1_000)  // 10 %
        #expect(kinds(subject(price: 1_100), medicine) == [])
        #expect(kinds(subject(price: 1_101), medicine) == ["rise_over_baseline"])
        let pork = Rules.Context(baselineFen: 1_000, riseThresholdBasisPoints: 500)  // 5 %
        #expect(kinds(subject(price: 1_050, commodityClass: "pork"), pork) == [])
        #expect(kinds(subject(price: 1_051, commodityClass: "pork"), pork) == ["rise_over_baseline"])
    }

    @Test func suddenJumpByRobustZScore() {
        // Median 100; absolute deviations 0,0,1,1,0,2,2 → MAD 1; z = 0.6745 (x − 100).
        let window = Rules.Context(window: [100, 100, 101, 99, 100, 102, 98])
        #expect(kinds(subject(price: 105), window) == [])  // z 3.37
        let jump = Rules.check(subject(price: 106), window, settings: .defaults)  // z 4.05
        #expect(jump.map(\.kind) == ["sudden_jump"])
        #expect(abs((jump[0].figures["robust_z"] ?? 0) - 4.047) < 0.001 && jump[0].figures["median_fen"] == 100)
        // Too few prices for a z-score.
        #expect(kinds(subject(price: 1_000), .init(window: [100, 100, 100, 100])) == [])
        // All equal: any rise is infinitely far; an equal price is not.
        #expect(kinds(subject(price: 101), .init(window: [100, 100, 100, 100, 100])) == ["sudden_jump"])
        #expect(kinds(subject(price: 100), .init(window: [100, 100, 100, 100, 100])) == [])
    }

    @Test func pricesAreNormalisedToTheCommodityUnitInIntegers() {
        #expect(UnitPrice.normalise(1_980, quantity: 1_000, unitQuantity: 500) == 990)  // per 1 kg → per 500 g
        #expect(UnitPrice.normalise(1_001, quantity: 2, unitQuantity: 1) == 501)  // 500.5 rounds half up
        #expect(UnitPrice.normalise(1_000, quantity: 3, unitQuantity: 1) == 333)
        #expect(UnitPrice.normalise(3_000, quantity: 10, unitQuantity: 24) == 7_200)  // box of 10 → per 24 capsules
        #expect(Rules.exceeds(Int64.max / 2, 4, Int64.max, 1))  // no overflow in the comparison
        #expect(!Rules.exceeds(3, 5, 15, 1))
    }

    /// A window's median is the sorted median: odd and even counts, runs of equal prices, sorted and
    /// reversed input.
    @Test func aWindowsMedianIsTheSortedMedian() {
        var random = SplitMix64(seed: 7)
        func sortedMedian(_ values: [Int64]) -> Double {
            let sorted = values.sorted(), middle = sorted.count / 2
            return sorted.count % 2 == 1 ? Double(sorted[middle]) : (Double(sorted[middle - 1]) + Double(sorted[middle])) / 2
        }
        for count in [1, 2, 3, 4, 5, 10, 101, 1_000, 4_096] {
            for spread in [1, 3, 1_000_000] {
                let values = (0..<count).map { _ in Int64(1 + random.next() % UInt64(spread)) }
                for input in [values, values.sorted(), values.sorted().reversed()] {
                    #expect(Rules.Window(Array(input)).median == sortedMedian(values), "\(count) values over \(spread)")
                }
            }
        }
        #expect(Rules.Window([]).median == 0)
    }

    /// A window's figures from sorted chunks, never merged, are the textbook ones: the median, the
    /// median of absolute deviations from it, and their mean — for narrow and wide spreads, odd and even
    /// counts (medians between two prices), runs of one price, and empty chunks.
    @Test func windowFiguresAreTheTextbookOnes() {
        var random = SplitMix64(seed: 11)
        func sortedMedian(_ values: [Double]) -> Double {
            let sorted = values.sorted(), middle = sorted.count / 2
            return sorted.isEmpty ? 0 : sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }
        let cases: [([Int], UInt64)] = [
            ([], 10), ([1], 10), ([2, 0, 3], 10), ([1_000, 999, 1], 1_000), ([5_000, 2_000, 17], 1_000), ([4, 4], 1),
            ([2, 2], 2), ([300, 301], 7), ([2_000, 2_000, 1_999], 1_000_000_000), ([64], 1_000_000_000_000_000),
        ]
        for (sizes, spread) in cases {
            let chunks = sizes.map { size in (0..<size).map { _ in Int64(1 + random.next() % spread) } }
            let values = chunks.flatMap { $0 }.map(Double.init)
            let median = sortedMedian(values)
            let deviations = values.map { abs($0 - median) }
            let window = Rules.Window(sortedChunks: chunks.map(SortedPrices.init))
            #expect(window.count == values.count)
            #expect(window.median == median, "\(sizes) over \(spread)")
            #expect(window.mad == sortedMedian(deviations), "\(sizes) over \(spread)")
            if spread < 1 << 40 {  // beyond, the textbook's own running sum rounds differently
                let mean = deviations.isEmpty ? 0 : deviations.reduce(0, +) / Double(deviations.count)
                #expect(window.meanDeviation == mean, "\(sizes) over \(spread)")
            }
        }
    }

    /// Adding prices to sorted ones is sorting them all.
    @Test func addingPricesKeepsThemSorted() {
        var random = SplitMix64(seed: 13)
        for (first, more) in [(0, 0), (0, 5), (5, 0), (2_000, 600), (7, 1)] {
            let a = (0..<first).map { _ in Int64(random.next() % 50) }, b = (0..<more).map { _ in Int64(random.next() % 50) }
            #expect(SortedPrices(a).adding(b) == SortedPrices(a + b))
        }
    }
}
