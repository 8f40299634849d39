import GRPCCore
import KangyiAPI
@testable import KangyiIntake
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO

/// An intake service over a fresh, migrated database of its own, with its group committer running.
struct IntakeHarness: Sendable {
    let service: IntakeService
    let client: DatabasePool

    func store() -> IntakeStore { service.store }

    static func run(_ label: String, _ body: @Sendable (IntakeHarness) async throws -> Void) async throws {
        let url = try await TestDatabase.migrated(label, Intake.definition.migrations)
        try await withDatabasePool(url, poolSize: 20) { client in
            // The committer's own pool, as the service runs it.
            try await Database.withPool(
                url: url, poolSize: IntakeStore.lanes, sessionSettings: IntakeStore.committerSessionSettings,
                logger: TestDatabase.logger
            ) { committerClient in
                let store = IntakeStore(client: client, committerClient: committerClient, logger: TestDatabase.logger)
                let service = IntakeService(store: store, reference: ReferenceDataCache(client: client, logger: TestDatabase.logger))
                try await withServiceGroup([store.committer]) { _ in
                    try await body(IntakeHarness(service: service, client: client))
                }
            }
        }
    }

    /// Submits as `caller` (with the personal-data scope, so answers are unmasked).
    func submit(_ request: Kangyi_Intake_V1_SubmitHelpRequestRequest, caller: String = "test-caller")
        async throws -> Kangyi_Intake_V1_SubmitHelpRequestResponse
    {
        try await CallerIdentity.$current.withValue(
            CallerIdentity(requestID: "r", caller: caller, scopes: [Scope.personalData])
        ) {
            try await service.submitHelpRequest(request: request, context: .testing)
        }
    }

    /// The change feed after `cursor`, waited on (up to 10 s) until it holds `count` changes.
    func changes(after cursor: FeedCursor, count: Int) async throws -> [(StoredHelpRequest, FeedCursor)] {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let changes = try await store().changes(after: cursor, limit: 100)
            if changes.count >= count || ContinuousClock.now > deadline { return changes }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// pg_trgm's similarity() of two texts, as PostgreSQL computes it.
    func similarity(_ a: String, _ b: String) async throws -> Double {
        try await client.scalar("SELECT similarity(\(a), \(b))::float8", as: Double.self) ?? 0
    }

    func count(_ sql: String = "SELECT count(*)::int FROM intake.help_requests") async throws -> Int {
        try await client.scalar(PostgresQuery(unsafeSQL: sql)) ?? 0
    }
}

/// A valid submission; tests change what they examine.
func submission(
    _ requestID: String = "req-\(RequestID.mint())", phone: String = "13812345678", category: String = "food_supply",
    description: String = "家里没有米和油了，老人独居，需要送菜。"
) -> Kangyi_Intake_V1_SubmitHelpRequestRequest {
    .with {
        $0.requestID = requestID
        $0.category = category
        $0.district = "410102"
        $0.contact = .with {
            $0.phone = phone
            $0.name = "张三"
            $0.address = "中原区中山路1号"
        }
        $0.description_p = description
        $0.urgency = .urgent
        $0.specialGroups = [.elderly, .livingAlone]
    }
}
