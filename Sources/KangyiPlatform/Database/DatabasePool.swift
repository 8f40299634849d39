import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// A PostgreSQL pool that is replaced whole when the database returns from an outage.
///
/// postgres-nio's pool (`PostgresClient`) retries a failed connect after a back-off that grows 1.25× an
/// attempt, up to a minute, and cannot be told to try now. After a 60-s outage intake's submissions failed
/// for 7.6 s more (Tests/Faults, `test_service_answers_soon_after_a_long_outage`; 15.8 s after a 90-s
/// one), while the health probe, on its own connection, said SERVING.
///
/// So the probe tells every pool when the database is reachable again after an outage
/// (``DatabasePools/databaseReturned()``). Each opens a fresh `PostgresClient` and, once that has a
/// working connection, gives it all new work. The one it replaces lets the calls holding its connections
/// finish, then closes (at most `drainLimit` later). A call still waiting for one of its connections is
/// then failed by it, before anything of the call ran, and runs again on the fresh pool.
public final class DatabasePool: Service, Sendable {
    /// How long a fresh pool has to prove a connection before the replacement is given up (until the next
    /// return).
    static let proofLimit: Duration = .seconds(5)

    /// One `PostgresClient` and the calls holding its connections now.
    final class Generation: Sendable {
        let client: PostgresClient
        /// Calls holding a connection; `Int.min` once the drain is over, when no call may start on one.
        private let holders = Atomic<Int>(0)
        let replaced = Atomic<Bool>(false)
        private let replacement: AsyncStream<Void>
        private let replacementContinuation: AsyncStream<Void>.Continuation

        init(_ client: PostgresClient) {
            self.client = client
            (replacement, replacementContinuation) = AsyncStream.makeStream()
        }

        func replace() {
            replaced.store(true, ordering: .sequentiallyConsistent)
            replacementContinuation.finish()
        }

        /// A call starts on a connection it was lent, unless the drain is over (the client is closing).
        func lend() -> Bool {
            if holders.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue > 0 { return true }
            holders.wrappingSubtract(1, ordering: .sequentiallyConsistent)
            return false
        }

        func giveBack() {
            holders.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        }

        /// Runs the client until it is replaced and no call holds a connection (or `drainLimit` after), or
        /// until the process shuts down.
        func run(drainLimit: Duration) async {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.client.run() }
                group.addTask { await self.untilDrained(limit: drainLimit) }
                await group.next()
                group.cancelAll()  // cancelling the client's run() closes it
            }
        }

        private func untilDrained(limit: Duration) async {
            for await _ in replacement {}
            guard !Task.isCancelled else { return }
            let clock = ContinuousClock()
            let end = clock.now + limit
            while !holders.compareExchange(expected: 0, desired: .min, ordering: .sequentiallyConsistent).exchanged,
                clock.now < end
            {
                guard (try? await Task.sleep(for: .milliseconds(20))) != nil else { return }
            }
        }
    }

    /// A call that was to start on a connection of a closing pool (``Generation/lend()``).
    private struct Closing: Error {}

    private let make: @Sendable () -> PostgresClient
    private let current: Mutex<Generation>
    private let returns: AsyncStream<Void>
    private let returnsContinuation: AsyncStream<Void>.Continuation
    private let drainLimit: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - drainLimit: how long a replaced pool's calls may keep its connections before it closes them anyway.
    ///   - make: a new, not yet running, `PostgresClient` of this pool's configuration.
    public init(drainLimit: Duration = .seconds(30), logger: Logger, make: @escaping @Sendable () -> PostgresClient) {
        self.make = make
        self.drainLimit = drainLimit
        self.current = Mutex(Generation(make()))
        (returns, returnsContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.logger = logger
    }

    /// The client new work goes to (for tests).
    var currentClient: PostgresClient { current.withLock { $0.client } }

    /// The database is reachable again after an outage: replace the pool (see the type's comment).
    public func databaseReturned() {
        returnsContinuation.yield()
    }

    /// Runs the pool, and each pool that replaces it, until the process shuts down (or the task is
    /// cancelled). Queries wait until this runs.
    public func run() async {
        let (first, drainLimit) = (current.withLock { $0 }, self.drainLimit)
        await withDiscardingTaskGroup { group in
            group.addTask { await first.run(drainLimit: drainLimit) }
            await withGracefulShutdownHandler {
                for await _ in returns {
                    let fresh = Generation(make())
                    let (running, started) = AsyncStream<Void>.makeStream()
                    group.addTask {
                        started.finish()
                        await fresh.run(drainLimit: drainLimit)
                    }
                    for await _ in running {}  // postgres-nio warns of a lease before its run()
                    let (logger, proofLimit) = (self.logger, Self.proofLimit)
                    let proven = try? await abandoning(after: proofLimit) {
                        _ = try await fresh.client.withConnection { try await $0.query("SELECT 1", logger: logger) }
                        return true
                    }
                    if proven == true {
                        let replaced = current.withLock { current in
                            defer { current = fresh }
                            return current
                        }
                        replaced.replace()
                        logger.notice("database pool replaced after the database's return; the old one closes once its calls end")
                    } else {
                        fresh.replace()
                        logger.warning("a fresh database pool found no connection; keeping the pool it was to replace")
                    }
                }
            } onGracefulShutdown: { [returnsContinuation] in
                returnsContinuation.finish()
            }
        }
    }

    /// A connection of the pool for `body`'s duration (postgres-nio's `withConnection`). When the pool it
    /// was waiting on is replaced and closes before lending one, it waits on the new pool instead.
    public func withConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        while true {
            let generation = current.withLock { $0 }
            var lent = false
            do {
                return try await generation.client.withConnection(isolation: isolation) { connection in
                    guard generation.lend() else { throw Closing() }
                    defer { generation.giveBack() }
                    lent = true
                    return try await body(connection)
                }
            } catch where !lent && generation.replaced.load(ordering: .sequentiallyConsistent) {
                continue  // nothing of `body` ran
            }
        }
    }

    /// Runs `query` on a connection of the pool (postgres-nio's `query`): the connection returns to the
    /// pool once the rows are read. A replaced pool does not wait for such a read (it cannot see when the
    /// rows end): one still reading when the pool closes fails. Work that must not be cut goes through ``withConnection(isolation:_:)``.
    @discardableResult
    public func query(
        _ query: PostgresQuery, logger: Logger? = nil, file: String = #fileID, line: Int = #line
    ) async throws -> PostgresRowSequence {
        while true {
            let generation = current.withLock { $0 }
            do {
                return try await generation.client.query(query, logger: logger, file: file, line: line)
            } catch where !(error is PSQLError) && generation.replaced.load(ordering: .sequentiallyConsistent) {
                continue  // the lease failed (a statement's failure is a PSQLError): nothing was sent
            }
        }
    }

    /// A transaction on a connection of the pool (see ``PostgresConnection/transaction(logger:isolation:_:)``).
    public func transaction<Result: Sendable>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withConnection(isolation: isolation) { connection in
            try await connection.transaction(logger: logger, isolation: isolation, body)
        }
    }
}

/// Every ``DatabasePool`` of a process, for the health probe to tell when the database returns.
public final class DatabasePools: Sendable {
    private let pools = Mutex<[DatabasePool]>([])

    public init() {}

    public func add(_ pool: DatabasePool) {
        pools.withLock { $0.append(pool) }
    }

    public func databaseReturned() {
        for pool in pools.withLock({ $0 }) { pool.databaseReturned() }
    }
}
