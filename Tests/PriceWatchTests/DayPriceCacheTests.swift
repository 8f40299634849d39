import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Testing

@testable import KangyiPriceWatch

@Suite struct DayPriceCacheTests {
    /// What the cache answers is what the table holds, read whole, after each kind of change a chunk can
    /// see: new chunks and days, a chunk that grew, one with fewer prices than the cache knows (a reader
    /// on an older snapshot), one deleted, and another district's chunks it must not mix in.
    @Test func theWindowIsTheTableAfterEveryChange() async throws {
        let url = try await TestDatabase.migrated("daypricecache", PriceWatch.definition.migrations)
        try await withDatabasePool(url, poolSize: 2) { client in
            let cache = DayPriceCache()
            let pairs = [["410102", "pork"], ["410105", "pork"]]
            func check(_ step: String) async throws {
                let got = try await client.withConnection { connection in
                    try await cache.prices(pairs: pairs, first: "2026-11-14", last: "2026-11-20", on: connection, logger: TestDatabase.logger)
                }
                var expected: [String: [Int64]] = [:]
                let rows = try await client.query(
                    """
                    SELECT district || '|' || commodity || '|' || day::text, prices FROM pricewatch.daily_prices
                    WHERE commodity = 'pork' AND district IN ('410102', '410105') AND day BETWEEN '2026-11-14' AND '2026-11-20'
                    """, logger: TestDatabase.logger)
                for try await (key, prices) in rows.decode((String, [Int64]).self) { expected[key, default: []] += prices }
                var actual: [String: [Int64]] = [:]
                for (pair, days) in got { for (day, prices) in days { actual["\(pair)|\(day)", default: []] += prices.values } }
                #expect(actual.mapValues { $0.sorted() } == expected.mapValues { $0.sorted() }, "\(step)")
            }
            func run(_ sql: String) async throws { try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger) }

            try await run("""
                INSERT INTO pricewatch.daily_prices (district, commodity, day, chunk, count, prices) VALUES
                    ('410102', 'pork', '2026-11-20', 0, 3, '{100,200,300}'), ('410102', 'pork', '2026-11-20', 1, 2, '{400,500}'),
                    ('410105', 'pork', '2026-11-19', 0, 1, '{900}'), ('410102', 'eggs', '2026-11-20', 0, 1, '{7}'),
                    ('410102', 'pork', '2026-11-01', 0, 1, '{1}')
                """)
            try await check("first read")
            try await check("unchanged")
            try await run("""
                UPDATE pricewatch.daily_prices SET count = count + 2, prices = prices || '{600,700}'::int8[]
                WHERE district = '410102' AND commodity = 'pork' AND day = '2026-11-20' AND chunk = 1
                """)
            try await run("""
                INSERT INTO pricewatch.daily_prices (district, commodity, day, chunk, count, prices) VALUES
                    ('410102', 'pork', '2026-11-20', 2, 1, '{800}'), ('410102', 'pork', '2026-11-15', 0, 2, '{10,20}')
                """)
            try await check("grown, and new chunks")
            try await run("""
                UPDATE pricewatch.daily_prices SET count = 1, prices = '{150}'
                WHERE district = '410102' AND commodity = 'pork' AND day = '2026-11-20' AND chunk = 0
                """)
            try await check("fewer than known")
            try await run("DELETE FROM pricewatch.daily_prices WHERE district = '410105'")
            try await check("deleted")
        }
    }
}
