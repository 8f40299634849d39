import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Testing

/// A pool that holds its connections (`Database.makePool(holdsConnections:)`, a group committer's):
/// all of them open before the first lease, the server keeping them alive with TCP keep-alives in place
/// of postgres-nio's keep-alive query, and one the server ends replaced without anyone asking.
@Suite struct HoldingPoolTests {
    static let name = "holding-pool-test"

    /// The pool's sessions on the server (their process ids), seen from another pool.
    func sessions(_ observer: DatabasePool) async throws -> Set<Int32> {
        try await observer.sessions(named: Self.name)
    }

    /// The sessions once there are `count` of them, none in `gone` (or what there is after 5 s).
    func waitFor(_ count: Int, sessionsOn observer: DatabasePool, besides gone: Set<Int32> = []) async throws -> Set<Int32> {
        var seen = try await sessions(observer)
        for _ in 0..<100 where seen.count != count || !seen.isDisjoint(with: gone) {
            try await Task.sleep(for: .milliseconds(50))
            seen = try await sessions(observer)
        }
        return seen
    }

    @Test func itOpensItsConnectionsAtOnceKeepsThemAliveFromTheServerAndReplacesOneThatEnds() async throws {
        let url = try await TestDatabase.fresh("holding")
        let holding = Database.makePool(
            url: url, poolSize: 2, sessionSettings: [("application_name", Self.name)], holdsConnections: true,
            logger: TestDatabase.logger)
        try await withDatabasePool(url, poolSize: 2) { observer in
            try await withServiceGroup([holding]) { _ in
                let first = try await waitFor(2, sessionsOn: observer)
                #expect(first.count == 2, "both open before any lease")
                let idle = try await holding.scalar("SHOW tcp_keepalives_idle", as: String.self)
                #expect(idle == "30", "the server sends keep-alives on an idle connection")
                let ordinary = try await observer.scalar("SHOW tcp_keepalives_idle", as: String.self)
                #expect(ordinary != "30", "an ordinary pool leaves the server's default")

                let ended = try await observer.scalar(
                    "SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity WHERE application_name = \(Self.name)")
                #expect(ended == 2)
                let second = try await waitFor(2, sessionsOn: observer, besides: first)
                #expect(second.count == 2 && second.isDisjoint(with: first), "both replaced, unasked")
                #expect(try await holding.scalar("SELECT 1") == 1)
            }
        }
    }
}
