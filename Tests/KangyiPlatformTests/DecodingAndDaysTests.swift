import Foundation
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Testing

/// The hand-written fast paths against the slow ones they replace.
@Suite struct DecodingAndDaysTests {
    /// The arithmetic day equals the time-zone database's day in Asia/Shanghai, around midnight and
    /// across the years it covers (and the older years, which still take the database's path).
    /// Trimming with its ASCII shortcut equals trimming by characters, whatever the edges are.
    @Test func trimmingSpacesEqualsTrimmingByCharacters() {
        func slow(_ text: String) -> Substring {
            var text = text[...]
            while let first = text.first, first.isWhitespace { text = text.dropFirst() }
            while let last = text.last, last.isWhitespace { text = text.dropLast() }
            return text
        }
        let samples = ["", " ", "a", " a ", "\ta\n", "\u{3000}求助\u{3000}", "x\u{301}", " \u{301}x", "\r\n", "a b",
                       "\u{A0}a", "a\u{2003}", "东湖路 12 号", "\u{301}", "e\u{301} "]
        for text in samples {
            #expect(text.trimmingSpaces == slow(text), "\(Array(text.unicodeScalars))")
        }
    }

    @Test func calendarDayOfMatchesTheTimeZoneDatabase() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        func reference(_ date: Date) -> String {
            let parts = calendar.dateComponents([.year, .month, .day], from: date)
            return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
        }
        var random = SplitMix64(seed: 1992)
        var moments: [TimeInterval] = [694_195_200, 694_195_199, 951_753_600 - 28_800, 4_102_444_799, -1, 0, 536_457_600]
        for _ in 0..<20_000 { moments.append(Double(random.next() % 4_200_000_000) - 100_000_000) }
        for midnight in stride(from: 694_195_200.0, to: 4_102_444_800, by: 86_400 * 97) {
            moments += [midnight - 0.001, midnight, midnight + 86_399.999]
        }
        for seconds in moments {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(CalendarDay.of(date) == reference(date), "\(seconds)")
        }
    }

    /// An int8[] read by ``Int64Array`` is the [Int64] PostgresNIO reads, empty and long arrays included;
    /// NULL elements are refused.
    @Test func int64ArrayDecodesWhatPostgresNIODecodes() async throws {
        let url = try await TestDatabase.fresh("int64array")
        try await withDatabasePool(url, poolSize: 1) { client in
            for sql in [
                "SELECT '{}'::int8[], '{}'::int8[]",
                "SELECT ARRAY[1, -1, 9223372036854775807, -9223372036854775808]::int8[], ARRAY[1, -1, 9223372036854775807, -9223372036854775808]::int8[]",
                "SELECT a, a FROM (SELECT array_agg(g * 7919 - 500000)::int8[] AS a FROM generate_series(1, 20000) g) x",
            ] {
                let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
                for try await (fast, reference) in rows.decode((Int64Array, [Int64]).self) {
                    #expect(fast.values == reference)
                }
            }
            await #expect(throws: (any Error).self) {
                let rows = try await client.query("SELECT ARRAY[1, NULL]::int8[]", logger: TestDatabase.logger)
                for try await _ in rows.decode(Int64Array.self) {}
            }
        }
    }

    /// A row copied with ``CopyRows`` is the row inserted from binds with the same values: text with
    /// COPY's and arrays' special characters, timestamps before and after 2000 to the microsecond.
    @Test func copiedRowsEqualInsertedRows() async throws {
        let url = try await TestDatabase.fresh("copyrows")
        let texts = ["", "plain", "豫A12345", "tab\there", "line\nbreak\r\n", "back\\slash\\N", "\\N", "NULL",
                     "quote\"s", "{braces},commas", " spaces ", "\u{1F}unit"]
        var generator = SystemRandomNumberGenerator()
        let dates = [Date(timeIntervalSince1970: 946_684_800), Date(timeIntervalSince1970: 946_684_799.999_999)]
            + (0..<2_000).map { _ in
                Date(timeIntervalSince1970: Double(Int64.random(in: -631_152_000_000_000...4_102_444_800_000_000, using: &generator)) / 1e6)
            }
        try await withDatabasePool(url, poolSize: 1) { client in
            try await client.query(
                "CREATE TABLE copied (id int PRIMARY KEY, t text, n int8, b bool, at timestamptz, ns int[], ts text[])",
                logger: TestDatabase.logger)
            try await client.query("CREATE TABLE inserted (LIKE copied)", logger: TestDatabase.logger)
            let rows = dates.indices.map { index in
                (id: index, text: texts[index % texts.count], number: Int64(index) * 7_919 - 5_000_000, flag: index % 2 == 0,
                 at: dates[index], numbers: Array((0..<(index % 4)).map { $0 * 100 - 150 }),
                 texts: Array(texts[(index % texts.count)...].prefix(index % 5)))
            }
            try await client.withConnection { connection in
                try await connection.copy(into: "public.copied", columns: ["id", "t", "n", "b", "at", "ns", "ts"], logger: TestDatabase.logger) { copy in
                    for row in rows {
                        copy.integer(row.id)
                        copy.text(row.text)
                        copy.integer(row.number)
                        copy.bool(row.flag)
                        copy.timestamp(row.at)
                        copy.integerArray(row.numbers)
                        copy.textArray(row.texts)
                        copy.endRow()
                    }
                }
            }
            for row in rows {
                try await client.query(
                    "INSERT INTO inserted VALUES (\(row.id), \(row.text), \(row.number), \(row.flag), \(row.at), \(row.numbers), \(row.texts))",
                    logger: TestDatabase.logger)
            }
            let differing = try await client.scalar(
                "SELECT count(*)::int8 FROM copied c FULL JOIN inserted i USING (id) WHERE (c.*) IS DISTINCT FROM (i.*)",
                as: Int64.self)
            #expect(differing == 0)
            #expect(try await client.scalar("SELECT count(*)::int8 FROM copied", as: Int64.self) == Int64(rows.count))
        }
    }

    /// ``ContentHash`` is PostgreSQL's `md5()` of the fields joined by U+001F (lists joined by commas):
    /// what ledgers stored when PostgreSQL hashed, so a resend of a log hashed then is still a resend.
    @Test func contentHashIsPostgresMD5OfTheJoinedFields() async throws {
        let url = try await TestDatabase.fresh("contenthash")
        let records: [(texts: [String], numbers: [Int], lists: [String])] = [
            ([], [], []), ([""], [], []), (["豫A12345", "blue", "tab\there"], [-1, 0, 373], ["red", "green"]),
            (["\u{1F}", ",", "NULL"], [Int.max, Int.min], [""]), (["é", "e\u{301}"], [7], ["a,b", "c"]),
        ]
        try await withDatabasePool(url, poolSize: 1) { client in
            for record in records {
                var hash = ContentHash()
                record.texts.forEach { hash.field($0) }
                hash.field(record.numbers)
                record.numbers.forEach { hash.field(Int64($0)) }
                hash.field(record.lists)
                let joined = (record.texts + [record.numbers.map(String.init).joined(separator: ",")]
                    + record.numbers.map(String.init) + [record.lists.joined(separator: ",")]).joined(separator: "\u{1F}")
                let hashedByPostgres = try await client.scalar("SELECT md5(\(joined))", as: String.self)
                #expect(hashedByPostgres == hash.hex())
            }
        }
    }

    /// Base64url byte by byte is Foundation's base64 with the alphabet swapped and the padding dropped,
    /// both ways, for every length of a few blocks; the standard alphabet and padding are refused.
    @Test func base64URLIsBase64WithTheURLAlphabet() {
        var random = SplitMix64(seed: 4648)
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let reference = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == reference)
            #expect(Base64URL.decode(reference) == Data(bytes))
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        for refused in ["+_8", "/_8", "-_8=", "a", "!!!!"] { #expect(Base64URL.decode(refused) == nil, "\(refused)") }
    }
}
