import Foundation
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Testing

/// The city's reference data: Zhengzhou by default, and `kangyi reference load` for a deployment's own.
@Suite struct ReferenceDataTests {
    static func zhengzhou() throws -> ReferenceData {
        try ReferenceDataFile.decode(Data(contentsOf: URL(fileURLWithPath: TestDatabase.repositoryRoot + "/reference/zhengzhou.json")))
    }

    static func withCommon(_ label: String, _ body: @Sendable (DatabasePool) async throws -> Void) async throws {
        let url = try await TestDatabase.migrated(label)
        try await withDatabasePool(url, poolSize: 4) { client in try await body(client) }
    }

    @Test func theMigrationsSeedZhengzhouExactlyAsTheExampleFileSays() async throws {
        try await Self.withCommon("ref-default") { client in
            let loaded = try await ReferenceData.load(from: client, logger: TestDatabase.logger)
            #expect(loaded == (try Self.zhengzhou()))
            #expect(loaded.district("410102")?.name == "中原区")
            #expect(loaded.district("zhengdong")?.kind == .zone)
            #expect(loaded.district("420106") == nil)
            #expect(loaded.city?.platePrefix == "豫A")
            #expect(loaded.department("development_reform") != nil && loaded.department("publicity") != nil)
        }
    }

    @Test func anotherCityReplacesItInOneLoadAndServicesSeeItWithinTheCacheLifetime() async throws {
        try await Self.withCommon("ref-load") { client in
            let cache = ReferenceDataCache(client: client, logger: TestDatabase.logger, lifetime: .milliseconds(200))
            #expect(try await cache.get().district("410102") != nil)
            var luoyang = try Self.zhengzhou()
            luoyang.city = .init(name: "洛阳市", nameEn: "Luoyang", code: "410300", province: "410000", platePrefix: "豫C")
            luoyang.districts = [
                .init(code: "410302", name: "老城区", nameEn: "Laocheng", kind: .urban),
                .init(code: "410305", name: "涧西区", nameEn: "Jianxi", kind: .urban),
                // A name passes from one code to another in the same load.
                .init(code: "luoyang_new", name: "中原区", nameEn: "Zhongyuan (renamed)", kind: .zone),
            ]
            luoyang.categories.removeLast()
            luoyang.categories[0].name = "防疫政策咨询"
            try await ReferenceDataFile.replace(with: luoyang, on: client, logger: TestDatabase.logger)
            let loaded = try await ReferenceData.load(from: client, logger: TestDatabase.logger)
            #expect(loaded == luoyang)
            try await Task.sleep(for: .milliseconds(250))
            #expect(try await cache.get().district("410102") == nil)
            #expect(try await cache.get().city?.name == "洛阳市")
        }
    }

    @Test func codesStillReferencedAreRefusedWithTheirListAndNothingChanges() async throws {
        try await Self.withCommon("ref-used") { client in
            try await client.query("CREATE TABLE public.help (district text REFERENCES common.districts (code))", logger: TestDatabase.logger)
            try await client.query("INSERT INTO public.help VALUES ('410103'), ('410105'), ('410105')", logger: TestDatabase.logger)
            var smaller = try Self.zhengzhou()
            smaller.districts.removeAll { ["410103", "410105", "410106"].contains($0.code) }
            let error = await #expect(throws: ReferenceDataFile.Problems.self) {
                try await ReferenceDataFile.replace(with: smaller, on: client, logger: TestDatabase.logger)
            }
            #expect(error?.problems.contains { $0.contains("410103, 410105 still named by help.district") } == true)
            #expect(try await ReferenceData.load(from: client, logger: TestDatabase.logger) == (try Self.zhengzhou()))
        }
    }

    @Test func aBadFileIsRefusedWithEveryProblemAtOnce() throws {
        var bad = try Self.zhengzhou()
        bad.city = nil
        bad.districts.append(bad.districts[0])
        bad.districts.append(.init(code: "4101", name: "x", nameEn: "x", kind: .urban))
        bad.categories[0].defaultDepartment = "nobody"
        let problems = ReferenceDataFile.check(bad)
        #expect(problems.contains("city: required"))
        #expect(problems.contains("districts.code: 410102 appears twice"))
        #expect(problems.contains("districts[17].code: six digits (an administrative code)"))
        #expect(problems.contains("categories[0].default_department: nobody is not among the departments"))
        let missing = #expect(throws: ReferenceDataFile.Problems.self) {
            try ReferenceDataFile.decode(Data(#"{"districts": [], "departments": [], "categories": [{"code": "x"}]}"#.utf8))
        }
        #expect(missing?.problems.first?.hasPrefix("categories[0].name") == true)
    }
}
