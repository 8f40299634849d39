import Foundation

/// The two spike indicators analysts know, computed on a commodity's monthly median prices in a district
/// (China Standard Time months). Pure functions; the README states the method and sources.
enum SpikeIndicators {
    struct Month: Sendable, Equatable {
        /// year × 12 + month − 1.
        var index: Int
        var price: Double

        init(year: Int, month: Int, price: Double) {
            index = year * 12 + month - 1
            self.price = price
        }

        init(_ text: String, price: Double) {
            let parts = text.split(separator: "-").compactMap { Int($0) }
            self.init(year: parts[0], month: parts[1], price: price)
        }

        var calendarMonth: Int { index % 12 }
        var text: String { String(format: "%04d-%02d", index / 12, index % 12 + 1) }
    }

    enum Band: String, Sendable {
        case insufficientHistory, normal, stress, moderate, alert, crisis
    }

    struct Result: Sendable, Equatable {
        var value: Double
        var band: Band
        var month: String
        var monthsOfHistory: Int
    }

    // MARK: ALPS

    /// The least months of medians ALPS is computed from.
    static let alpsMinimumMonths = 36

    /// WFP's Alert for Price Spikes (Baquedano 2015, WFP VAM): the monthly prices regressed on a linear
    /// trend and 12 calendar-month dummies without an intercept, by ordinary least squares; ALPS for a
    /// month is its residual over the standard deviation of all residuals. Bands: < 0.25 normal, < 1 stress,
    /// < 2 alert, ≥ 2 crisis. Computed for the latest month.
    static func alps(_ series: [Month]) -> Result {
        let months = series.sorted { $0.index < $1.index }
        guard months.count >= alpsMinimumMonths, let first = months.first, let last = months.last else {
            return Result(value: 0, band: .insufficientHistory, month: series.last?.text ?? "", monthsOfHistory: series.count)
        }
        // Columns: the trend (months since the first, from 1) and one dummy per calendar month present.
        let calendarMonths = Array(Set(months.map(\.calendarMonth))).sorted()
        let rows: [[Double]] = months.map { month in
            [Double(month.index - first.index + 1)] + calendarMonths.map { $0 == month.calendarMonth ? 1 : 0 }
        }
        let y = months.map(\.price)
        guard let beta = leastSquares(rows, y) else {
            return Result(value: 0, band: .insufficientHistory, month: last.text, monthsOfHistory: months.count)
        }
        let residuals = zip(rows, y).map { row, value in value - zip(row, beta).reduce(0) { $0 + $1.0 * $1.1 } }
        let sd = (residuals.reduce(0) { $0 + $1 * $1 } / Double(residuals.count - 1)).squareRoot()
        let value = sd > 0 ? residuals.last! / sd : 0
        let band: Band = value < 0.25 ? .normal : value < 1 ? .stress : value < 2 ? .alert : .crisis
        return Result(value: value, band: band, month: last.text, monthsOfHistory: months.count)
    }

    /// β minimising ‖Xβ − y‖² (the normal equations, by Gaussian elimination with partial pivoting).
    static func leastSquares(_ x: [[Double]], _ y: [Double]) -> [Double]? {
        let p = x.first?.count ?? 0
        var a = [[Double]](repeating: [Double](repeating: 0, count: p + 1), count: p)
        for (row, value) in zip(x, y) {
            for i in 0..<p {
                for j in 0..<p { a[i][j] += row[i] * row[j] }
                a[i][p] += row[i] * value
            }
        }
        for column in 0..<p {
            guard let pivot = (column..<p).max(by: { abs(a[$0][column]) < abs(a[$1][column]) }), abs(a[pivot][column]) > 1e-12
            else { return nil }
            a.swapAt(column, pivot)
            for row in 0..<p where row != column {
                let factor = a[row][column] / a[column][column]
                if factor != 0 { for k in column...p { a[row][k] -= factor * a[column][k] } }
            }
        }
        return (0..<p).map { a[$0][p] / a[$0][$0] }
    }

    // MARK: IFPA

    /// FAO GIEWS's Indicator of Food Price Anomalies (Baquedano 2015, FAO): for a month t,
    /// CQGR = (P_t / P_{t−3})^(1/3) − 1 and CAGR = (P_t / P_{t−12})^(1/12) − 1; each is standardised
    /// against the same calendar month of earlier years with a weighted mean and standard deviation
    /// (weights 1, 2, … from the oldest year: recent years count more); IFPA = 0.4 × z(CQGR) + 0.6 ×
    /// z(CAGR). Bands: < 0.5 normal, < 1 moderate, ≥ 1 abnormally high (alert). Needs both growth rates
    /// for the month and for at least two earlier years (37 months or more).
    static func ifpa(_ series: [Month]) -> Result {
        let prices = Dictionary(series.map { ($0.index, $0.price) }, uniquingKeysWith: { $1 })
        guard let latest = series.map(\.index).max() else {
            return Result(value: 0, band: .insufficientHistory, month: "", monthsOfHistory: 0)
        }
        let text = Month(year: latest / 12, month: latest % 12 + 1, price: 0).text
        func growth(_ t: Int, over months: Int) -> Double? {
            guard let now = prices[t], let then = prices[t - months], now > 0, then > 0 else { return nil }
            return pow(now / then, 1 / Double(months)) - 1
        }
        guard let quarterly = growth(latest, over: 3), let annual = growth(latest, over: 12) else {
            return Result(value: 0, band: .insufficientHistory, month: text, monthsOfHistory: prices.count)
        }
        // The same calendar month of earlier years, oldest first.
        let earlierMonths = stride(from: latest - 12, through: (prices.keys.min() ?? latest), by: -12).reversed()
        let earlierQuarterly = earlierMonths.compactMap { growth($0, over: 3) }
        let earlierAnnual = earlierMonths.compactMap { growth($0, over: 12) }
        guard earlierQuarterly.count >= 2, earlierAnnual.count >= 2 else {
            return Result(value: 0, band: .insufficientHistory, month: text, monthsOfHistory: prices.count)
        }
        let value = 0.4 * standardised(quarterly, against: earlierQuarterly) + 0.6 * standardised(annual, against: earlierAnnual)
        let band: Band = value < 0.5 ? .normal : value < 1 ? .moderate : .alert
        return Result(value: value, band: band, month: text, monthsOfHistory: prices.count)
    }

    /// (x − weighted mean) / weighted standard deviation, weights 1, 2, … n from the oldest; a history
    /// with no spread at all gives ±10 for any departure from it (and 0 for none).
    static func standardised(_ x: Double, against history: [Double]) -> Double {
        let weights = (1...history.count).map(Double.init)
        let total = weights.reduce(0, +)
        let mean = zip(weights, history).reduce(0) { $0 + $1.0 * $1.1 } / total
        let variance = zip(weights, history).reduce(0) { $0 + $1.0 * ($1.1 - mean) * ($1.1 - mean) } / total
        let sd = variance.squareRoot()
        if sd < 1e-12 { return abs(x - mean) < 1e-12 ? 0 : (x > mean ? 10 : -10) }
        return (x - mean) / sd
    }
}
