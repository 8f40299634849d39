import Foundation
import Testing

@testable import KangyiPriceWatch

/// ALPS and IFPA on series built here: a known trend with seasonality (and a little deterministic noise)
/// must read normal; the same with one spike in the latest month must reach the top bands.
@Suite struct SpikeIndicatorTests {
    /// `months` monthly prices from January 2019: 1,000 fen, +4 a month, ±60 by season, ±3 noise.
    func series(months: Int, spike: Double = 0) -> [SpikeIndicators.Month] {
        (0..<months).map { t in
            let season = 60 * sin(2 * Double.pi * Double(t % 12) / 12)
            let noise = Double([3, -2, 1, -3, 2, 0, -1][t % 7])
            let price = 1_000 + 4 * Double(t) + season + noise + (t == months - 1 ? spike : 0)
            return SpikeIndicators.Month(year: 2019 + t / 12, month: t % 12 + 1, price: price)
        }
    }

    @Test func leastSquaresRecoversAKnownModel() throws {
        // y = 3t + 10 in January, 20 in February, exactly.
        var rows: [[Double]] = []
        var y: [Double] = []
        for t in 1...8 {
            let january: Double = t % 2 == 1 ? 1 : 0
            rows.append([Double(t), january, 1 - january])
            y.append(3 * Double(t) + 10 * january + 20 * (1 - january))
        }
        let beta = try #require(SpikeIndicators.leastSquares(rows, y))
        #expect(zip(beta, [3.0, 10, 20]).allSatisfy { abs($0 - $1) < 1e-9 })
    }

    @Test func alpsNeedsThreeYearsAndFindsTheSpike() {
        let short = SpikeIndicators.alps(series(months: 35))
        #expect(short.band == .insufficientHistory && short.monthsOfHistory == 35)
        let calm = SpikeIndicators.alps(series(months: 48))
        #expect(calm.band == .normal || calm.band == .stress)
        #expect(abs(calm.value) < 1)
        let spiked = SpikeIndicators.alps(series(months: 48, spike: 250))
        #expect(spiked.band == .crisis && spiked.value >= 2)
        #expect(spiked.month == "2022-12")
        // A moderate rise lands between.
        let raised = SpikeIndicators.alps(series(months: 48, spike: 12))
        #expect(raised.value > calm.value && raised.value < spiked.value)
    }

    @Test func ifpaNeedsTwoEarlierYearsAndFindsTheSpike() {
        let short = SpikeIndicators.ifpa(series(months: 36))
        #expect(short.band == .insufficientHistory)
        let calm = SpikeIndicators.ifpa(series(months: 48))
        #expect(calm.band == .normal && calm.value < 0.5)
        let spiked = SpikeIndicators.ifpa(series(months: 48, spike: 250))
        #expect(spiked.band == .alert && spiked.value >= 1)
    }

    @Test func ifpaStandardisesAgainstEarlierYearsWithRecentWeights() {
        // Earlier values 0.01 (weight 1) and 0.03 (weight 2): mean 0.02333…, sd 0.009428…
        let z = SpikeIndicators.standardised(0.05, against: [0.01, 0.03])
        #expect(abs(z - (0.05 - 0.07 / 3) / (0.0008 / 9).squareRoot()) < 1e-9)
        #expect(SpikeIndicators.standardised(0.02, against: [0.02, 0.02]) == 0)
        #expect(SpikeIndicators.standardised(0.03, against: [0.02, 0.02]) == 10)
    }
}
