@testable import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Testing

/// A pool replaced when the database returns (`DatabasePool`): calls holding the old pool's connections
/// finish on them, new calls go to the fresh pool, the old pool then closes, and a call still waiting on
/// it when it closes runs on the fresh one. (The outage itself: Tests/Faults,
/// `test_service_answers_soon_after_a_long_outage`.)
@Suite struct DatabasePoolTests {
    /// One connection, so that a call holding it keeps any other call of the same pool waiting.
    func onePool(_ url: DatabaseURL, _ name: String, drainLimit: Duration = .seconds(30)) -> DatabasePool {
        DatabasePool(drainLimit: drainLimit, logger: TestDatabase.logger) {
            Database.makeClient(url: url, poolSize: 1, sessionSettings: [("application_name", name)], logger: TestDatabase.logger)
        }
    }

    /// Polls `condition` every 20 ms for up to 5 s.
    func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<250 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test func callsHoldingTheOldPoolFinishOnItNewCallsGoToTheFreshOneAndTheOldCloses() async throws {
        let url = try await TestDatabase.fresh("pool-renewal")
        let name = "pool-renewal-test"
        let pool = onePool(url, name)
        let (release, releaser) = AsyncStream<Void>.makeStream()
        try await withDatabasePool(url, poolSize: 2) { observer in
            try await withServiceGroup([pool]) { _ in
                let (held, holding) = AsyncStream<Int32>.makeStream()
                async let holder: (Int32, Int32) = pool.withConnection { connection in
                    let before = try await connection.backendPID()
                    holding.yield(before)
                    for await _ in release {}
                    return (before, try await connection.backendPID())  // its connection still answers
                }
                var heldPids = held.makeAsyncIterator()
                let old = try #require(await heldPids.next())

                let replaced = pool.currentClient
                pool.databaseReturned()
                // Once the fresh pool has proved a connection it takes new calls (not before: on the old
                // pool this call would wait for the held connection, which waits for this call).
                try #require(try await eventually { pool.currentClient !== replaced }, "the pool is replaced")
                #expect(try await observer.sessions(named: name).count == 2, "both pools' connections")
                let fresh = try await pool.withConnection { try await $0.backendPID() }
                #expect(fresh != old, "a new call goes to the fresh pool, not waiting for the held connection")

                releaser.finish()
                let (before, after) = try await holder
                #expect(before == old && after == old, "the held call finished on the old pool's connection")
                #expect(try await eventually { try await observer.sessions(named: name) == [fresh] }, "the old pool closed")
                #expect(try await pool.withConnection { try await $0.backendPID() } == fresh)
            }
        }
    }

    @Test func aCallWaitingOnTheOldPoolWhenItClosesRunsOnTheFreshOne() async throws {
        let url = try await TestDatabase.fresh("pool-renewal")
        let name = "pool-renewal-waiter-test"
        let pool = onePool(url, name, drainLimit: .milliseconds(300))
        let (release, releaser) = AsyncStream<Void>.makeStream()
        try await withDatabasePool(url, poolSize: 2) { observer in
            try await withServiceGroup([pool]) { _ in
                let (held, holding) = AsyncStream<Int32>.makeStream()
                // Holds the old pool's one connection past the drain limit: closed under it.
                async let holder: Int32? = {
                    do {
                        return try await pool.withConnection { connection in
                            holding.yield(try await connection.backendPID())
                            for await _ in release {}
                            return try await connection.backendPID()  // through queryWhenOpen: fails, not hangs, once closed
                        }
                    } catch {
                        return nil
                    }
                }()
                var heldPids = held.makeAsyncIterator()
                let old = try #require(await heldPids.next())
                async let waiter = pool.withConnection { try await $0.backendPID() }  // waits for that connection
                try await Task.sleep(for: .milliseconds(100))

                pool.databaseReturned()
                let fresh = try await waiter
                #expect(fresh != old, "the waiter ran on the fresh pool once the old one closed")
                releaser.finish()
                #expect(await holder == nil, "a call holding a connection past the drain limit is cut")
                #expect(try await eventually { try await observer.sessions(named: name) == [fresh] })
            }
        }
    }
}
