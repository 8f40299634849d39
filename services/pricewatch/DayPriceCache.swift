import KangyiPlatform
import Logging
import PostgresNIO
import Synchronization

/// The `daily_prices` chunks the sudden-jump rule reads (a week of every price of a district's
/// commodity), kept between batches so each batch fetches only what changed.
///
/// Every batch used to read its windows whole: on a busy commodity that was PostgreSQL's costliest
/// statement at ingest (8.7 ms of a 635-row batch) and a fifth of the server's CPU decoding arrays it had
/// decoded the batch before. Chunks only ever grow at their end (`prices || new`, `count + n`), so a
/// chunk known with `count` prices is the first `count` of any later version: the query sends what is
/// known and PostgreSQL returns, per chunk of the window, nothing when the count is unchanged, the new
/// end when it grew, and the whole array otherwise (unknown, or fewer than known: an older snapshot than
/// the cache's). The answer is exactly the transaction's snapshot; the cache only saves the transfer.
final class DayPriceCache: Sendable {
    struct Chunk: Hashable {
        var district: String
        var commodity: String
        var day: String
        var chunk: Int32
    }

    private struct Pair: Hashable {
        var district: String
        var commodity: String
    }

    /// Past this many prices (8 bytes each) the chunks this batch did not use are forgotten.
    let limit: Int
    private let known = Mutex<(chunks: [Chunk: SortedPrices], prices: Int)>(([:], 0))

    /// 2 million prices: 32 MB, a value and a running sum each.
    init(limit: Int = 2_000_000) { self.limit = limit }

    /// Every price of `pairs` ("district|commodity") on days `first` through `last`, per pair and day
    /// in sorted chunks, as the transaction of `connection` sees them.
    func prices(pairs: [[String]], first: String, last: String, on connection: PostgresConnection, logger: Logger)
        async throws -> [String: [(day: String, prices: SortedPrices)]]
    {
        let wanted = Set(pairs.map { Pair(district: $0[0], commodity: $0[1]) })
        let cached = known.withLock { known in
            known.chunks.filter { key, _ in
                key.day >= first && key.day <= last && wanted.contains(Pair(district: key.district, commodity: key.commodity))
            }
        }
        let entries = Array(cached)
        let keys = entries.map(\.key)
        var window: [Chunk: SortedPrices] = [:]
        let rows = try await connection.queryWhenOpen(
            """
            SELECT d.district, d.commodity, d.day::text, d.chunk, d.count,
                   CASE WHEN k.count IS NULL OR d.count < k.count THEN d.prices
                        WHEN d.count > k.count THEN d.prices[k.count + 1:] END
            FROM pricewatch.daily_prices d
            JOIN unnest(\(pairs.map { $0[0] })::text[], \(pairs.map { $0[1] })::text[]) AS p(district, commodity)
              ON p.district = d.district AND p.commodity = d.commodity
            LEFT JOIN unnest(\(keys.map(\.district))::text[], \(keys.map(\.commodity))::text[], \(keys.map(\.day))::text[],
                             \(keys.map(\.chunk))::int4[], \(entries.map { Int32($0.value.values.count) })::int4[])
                   AS k(district, commodity, day, chunk, count)
              ON k.district = d.district AND k.commodity = d.commodity AND k.day::date = d.day AND k.chunk = d.chunk
            WHERE d.day BETWEEN \(first)::date AND \(last)::date
            """, logger: logger)
        let decoded = rows.decode((String, String, String, Int32, Int32, Int64Array?).self)
        for try await (district, commodity, day, chunk, count, fetched) in decoded {
            let key = Chunk(district: district, commodity: commodity, day: day, chunk: chunk)
            // The whole chunk, or what it gained since the known beginning (nothing when unchanged).
            let prices: SortedPrices
            if let fetched, fetched.values.count == Int(count) {
                prices = SortedPrices(fetched.values)
            } else if let earlier = cached[key] {
                prices = fetched.map { earlier.adding($0.values) } ?? earlier
            } else {
                prices = SortedPrices([])
            }
            guard prices.values.count == Int(count) else {
                throw PlatformError(description: "day prices: chunk \(chunk) of \(day) does not add up to its count")
            }
            window[key] = prices
        }
        remember(window)
        var found: [String: [(day: String, prices: SortedPrices)]] = [:]
        for (key, prices) in window { found["\(key.district)|\(key.commodity)", default: []].append((key.day, prices)) }
        return found
    }

    /// Keeps the longer of what is known and what was read (two lanes read different snapshots).
    private func remember(_ window: [Chunk: SortedPrices]) {
        known.withLock { known in
            for (key, prices) in window where prices.values.count > (known.chunks[key]?.values.count ?? -1) {
                known.prices += prices.values.count - (known.chunks[key]?.values.count ?? 0)
                known.chunks[key] = prices
            }
            if known.prices > limit {
                known.chunks = known.chunks.filter { window[$0.key] != nil }
                known.prices = known.chunks.values.reduce(0) { $0 + $1.values.count }
            }
        }
    }
}
