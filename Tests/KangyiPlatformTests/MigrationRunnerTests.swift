import KangyiPlatform
import KangyiTestSupport
import Logging
import PostgresNIO
import Testing

@Suite struct MigrationRunnerTests {
    let logger = TestDatabase.logger

    static let steps = [
        Migration(schema: "demo", version: 2, name: "add column", statements: ["ALTER TABLE demo.things ADD COLUMN size int"]),
        Migration(schema: "demo", version: 1, name: "create", statements: ["CREATE SCHEMA demo", "CREATE TABLE demo.things (id int PRIMARY KEY)"]),
    ]

    @Test func appliesInOrderRecordsAndNeverRepeats() async throws {
        let url = try await TestDatabase.fresh("migrate")
        let runner = MigrationRunner(logger: logger)
        let first = try await runner.apply(CommonSchema.migrations + Self.steps, url: url)
        #expect(first.map { "\($0.schema)/\($0.version)" } == ["common/1", "common/2", "demo/1", "demo/2"])
        let second = try await runner.apply(CommonSchema.migrations + Self.steps, url: url)
        #expect(second.isEmpty)

        try await withDatabasePool(url) { client in
            let rows = try await client.query(
                "SELECT schema_name, version FROM public.kangyi_schema_migrations ORDER BY schema_name, version",
                logger: logger)
            var recorded: [String] = []
            for try await (schema, version) in rows.decode((String, Int).self) { recorded.append("\(schema)/\(version)") }
            #expect(recorded == ["common/1", "common/2", "demo/1", "demo/2"])
            let reference = try await ReferenceData.load(from: client, logger: logger)
            #expect(reference.districts.count == 16)  // Zhengzhou's 12 and 4 functional zones
            #expect(reference.categories.map(\.code) == [
                "epidemic_policy", "transport", "medical", "education", "food_supply", "health_code", "other",
            ])
            #expect(reference.department("commerce") != nil)
        }
    }

    @Test func aFailingStepLeavesNothingBehind() async throws {
        let url = try await TestDatabase.fresh("migratefail")
        let broken = Migration(
            schema: "demo", version: 1, name: "half",
            statements: ["CREATE SCHEMA demo", "CREATE TABLE demo.a (id int)", "CREATE TABLE demo.a (id int)"])
        await #expect(throws: (any Error).self) {
            try await MigrationRunner(logger: logger).apply([broken], url: url)
        }
        try await withDatabasePool(url) { client in
            let rows = try await client.query(
                "SELECT count(*)::int FROM pg_namespace WHERE nspname = 'demo'", logger: logger)
            for try await count in rows.decode(Int.self) { #expect(count == 0) }
            let recorded = try await client.query(
                "SELECT count(*)::int FROM public.kangyi_schema_migrations", logger: logger)
            for try await count in recorded.decode(Int.self) { #expect(count == 0) }
        }
    }

    @Test func aStepRewrittenAfterItRanStopsStartUp() async throws {
        let url = try await TestDatabase.fresh("migratedrift")
        let runner = MigrationRunner(logger: logger)
        try await runner.apply([Self.steps[1]], url: url)
        var rewritten = Self.steps[1]
        rewritten.statements[1] = "CREATE TABLE demo.things (id bigint PRIMARY KEY)"
        await #expect(throws: PlatformError.self) { try await runner.apply([rewritten], url: url) }
    }

    @Test func replicasStartingTogetherMigrateOnce() async throws {
        let url = try await TestDatabase.fresh("migraterace")
        let applied = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await MigrationRunner(logger: logger).apply(CommonSchema.migrations + Self.steps, url: url).count
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        // One runner did all four steps; the others waited on the lock and found nothing to do.
        #expect(applied.sorted() == [0, 0, 0, 4])
    }

    @Test func theOwnerHandsEachSchemaToItsRoleAndThatRoleMayNotMigrate() async throws {
        let url = try await TestDatabase.fresh("migrateroles")
        // Made by the owner before roles existed: the next run hands it over all the same.
        try await withDatabasePool(url) { client in
            try await client.query("CREATE SCHEMA demo", logger: logger)
            try await client.query("CREATE TABLE demo.early (id int)", logger: logger)
        }
        let steps = [Migration(schema: "demo", version: 1, name: "create", statements: ["CREATE TABLE demo.things (id int PRIMARY KEY)"])]
        try await MigrationRunner(logger: logger).apply(CommonSchema.migrations + steps, url: url)
        try await withDatabasePool(url) { client in
            let owners = try await client.query(
                """
                SELECT string_agg(DISTINCT owner, ',') FROM (
                    SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = 'demo'
                    UNION ALL SELECT relowner::regrole::text FROM pg_class WHERE relnamespace = 'demo'::regnamespace) o
                """, logger: logger)
            for try await owner in owners.decode(String.self) { #expect(owner == "kangyi_demo") }
            let reach = try await client.query(
                """
                SELECT has_schema_privilege('kangyi_demo', 'common', 'USAGE'),
                       has_table_privilege('kangyi_demo', 'common.districts', 'SELECT'),
                       has_table_privilege('kangyi_demo', 'common.districts', 'UPDATE'),
                       has_table_privilege('kangyi_demo', 'public.kangyi_schema_migrations', 'INSERT')
                """, logger: logger)
            for try await (usage, select, update, record) in reach.decode((Bool, Bool, Bool, Bool).self) {
                #expect(usage && select && !update && !record)
            }
        }
        // Connected as that role with a step pending, start-up refuses and names the command that migrates.
        let pending = steps + [Migration(schema: "demo", version: 2, name: "more", statements: ["CREATE TABLE demo.more (id int)"])]
        _ = try await withDatabasePool(url) { client in
            try await client.query("ALTER ROLE kangyi_demo LOGIN", logger: logger)
        }
        var asRole = url
        asRole.user = "kangyi_demo"
        asRole.password = nil
        await #expect {
            try await MigrationRunner(logger: logger).apply(CommonSchema.migrations + pending, url: asRole)
        } throws: { error in
            "\(error)".contains("run `kangyi migrate` as the owner role")
        }
        #expect(try await MigrationRunner(logger: logger).apply(CommonSchema.migrations + steps, url: asRole).isEmpty)
    }
}
