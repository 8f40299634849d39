import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Synchronization
import Testing

/// The group committer's promises, without a database: one bad item fails alone, a caller whose task is
/// cancelled is answered at once, a batch nobody waits for is cancelled, shutdown refuses new items.
@Suite struct GroupCommitterTests {
    struct Refused: Error {}

    /// Records each commit's batch; a batch holding `poison` fails as a whole, as a transaction would.
    final class Ledger: Sendable {
        let batches = Mutex<[[Int]]>([])
        func commit(_ items: [Int], poison: Set<Int>) throws -> [Result<Int, any Error>] {
            batches.withLock { $0.append(items) }
            if items.contains(where: poison.contains) { throw Refused() }
            return items.map { .success($0 * 10) }
        }
    }

    @Test func oneBadItemFailsAloneAndEveryNeighbourIsCommitted() async throws {
        let ledger = Ledger()
        let poison: Set<Int> = [7, 23]
        let committer = GroupCommitter<Int, Int>(maxBatch: 64, lanes: 1) { items in
            try await Task.sleep(for: .milliseconds(5))  // lets a burst gather into one batch
            return try ledger.commit(items, poison: poison)
        }
        let results = try await withServiceGroup([committer]) { _ in
            await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
                for item in 0..<40 {
                    group.addTask {
                        do { return (item, .success(try await committer.submit(item))) } catch { return (item, .failure(error)) }
                    }
                }
                return await group.reduce(into: [Int: Result<Int, any Error>]()) { $0[$1.0] = $1.1 }
            }
        }
        for (item, result) in results {
            if poison.contains(item) {
                #expect(throws: Refused.self) { try result.get() }
            } else {
                #expect(try result.get() == item * 10, "item \(item)")
            }
        }
        // Every good item was committed exactly once; batches were bisected, not retried one by one.
        let committed = ledger.batches.withLock { $0 }.filter { !$0.contains(where: poison.contains) }.flatMap { $0 }
        #expect(committed.sorted() == (0..<40).filter { !poison.contains($0) })
        #expect(ledger.batches.withLock { $0.count } < 40)
    }

    /// Items handed over together get one result each, in order: a bad one fails alone inside its ticket,
    /// tickets share batches, and a ticket larger than a batch is committed alone, never split.
    @Test func itemsSubmittedTogetherAreAnsweredOneByOne() async throws {
        let ledger = Ledger()
        let poison: Set<Int> = [5, 130]
        let committer = GroupCommitter<Int, Int>(maxBatch: 32, lanes: 1) { items in
            try await Task.sleep(for: .milliseconds(5))
            return try ledger.commit(items, poison: poison)
        }
        let tickets = [Array(0..<10), Array(10..<20), Array(100..<180), [7]]
        let answers = try await withServiceGroup([committer]) { _ in
            try await withThrowingTaskGroup(of: ([Int], [Result<Int, any Error>]).self) { group in
                for items in tickets { group.addTask { (items, try await committer.submit(contentsOf: items)) } }
                return try await group.reduce(into: [[Int]: [Result<Int, any Error>]]()) { $0[$1.0] = $1.1 }
            }
        }
        for items in tickets {
            let results = try #require(answers[items])
            #expect(results.count == items.count)
            for (item, result) in zip(items, results) {
                if poison.contains(item) {
                    #expect(throws: Refused.self) { try result.get() }
                } else {
                    #expect(try result.get() == item * 10, "item \(item)")
                }
            }
        }
        let batches = ledger.batches.withLock { $0 }
        let committed = batches.filter { !$0.contains(where: poison.contains) }.flatMap { $0 }
        #expect(committed.sorted() == tickets.flatMap { $0 }.filter { !poison.contains($0) }.sorted())
        // The 80-item ticket went whole into a batch of its own (its first attempt), never cut at 32.
        #expect(batches.contains { $0 == Array(100..<180) })
        #expect(try await committer.submit(contentsOf: []).isEmpty)
    }

    @Test func aCancelledCallerIsAnsweredAtOnceAndAnAbandonedCommitIsCancelled() async throws {
        let commitCancelled = Mutex(false)
        let commitStarted = Mutex(false)
        let committer = GroupCommitter<Int, Int>(maxBatch: 8, lanes: 1) { items in
            commitStarted.withLock { $0 = true }
            do {
                try await Task.sleep(for: .seconds(60))  // a commit stuck on an unreachable database
            } catch {
                commitCancelled.withLock { $0 = true }
                throw error
            }
            return items.map { .success($0) }
        }
        try await withServiceGroup([committer]) { _ in
            let caller = Task { try await committer.submit(1) }
            while !commitStarted.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
            let start = ContinuousClock.now
            caller.cancel()
            await #expect(throws: CancellationError.self) { try await caller.value }
            #expect(ContinuousClock.now - start < .seconds(1))
            // Nobody waits for the batch any more: its commit is cancelled (soon, on a busy machine).
            let deadline = ContinuousClock.now + .seconds(5)
            while !commitCancelled.withLock({ $0 }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(commitCancelled.withLock { $0 }, "an abandoned commit is cancelled")
        }
    }

    /// A commit that never ends — a statement whose answer never comes, deaf to cancellation — holds
    /// neither its caller (no deadline, as a terminal's upload stream) past ``GroupCommitter/patience``,
    /// nor its lane: the caller is answered UNAVAILABLE and may retry, and the next caller is committed.
    @Test func aCallerIsAnsweredUnavailableOnceItsCommitOutlastsThePatience() async throws {
        let stuck = Mutex(true)
        let committer = GroupCommitter<Int, Int>(maxBatch: 8, lanes: 1, patience: .milliseconds(400)) { items in
            if stuck.withLock({ $0 }) {
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }  // never resumed
            }
            return items.map { .success($0) }
        }
        try await withServiceGroup([committer]) { group in
            let start = ContinuousClock.now
            let caller = Task { try await committer.submit(1) }
            let watchdog = Task {  // without the patience the caller would wait for ever
                try await Task.sleep(for: .seconds(10))
                caller.cancel()
            }
            defer { watchdog.cancel() }
            await #expect {
                try await caller.value
            } throws: {
                ($0 as? ServiceError)?.code == .unavailable && ($0 as? ServiceError)?.reason == "DATABASE_UNAVAILABLE"
            }
            let waited = ContinuousClock.now - start
            #expect(waited >= .milliseconds(400) && waited < .seconds(5), "answered after \(waited)")
            stuck.withLock { $0 = false }
            let next = try await committer.submit(2)
            #expect(next == 2, "the lane took the next batch")
            await group.triggerGracefulShutdown()
        }
    }

    @Test func afterShutdownNewItemsAreRefusedAsUnavailable() async throws {
        let committer = GroupCommitter<Int, Int>(maxBatch: 8, lanes: 1) { items in items.map { .success($0) } }
        try await withServiceGroup([committer]) { group in
            #expect(try await committer.submit(3) == 3)
            await group.triggerGracefulShutdown()
            try await Task.sleep(for: .milliseconds(50))
        }
        await #expect { try await committer.submit(4) } throws: { ($0 as? ServiceError)?.code == .unavailable }
    }

    /// On an ``EventLoopTaskExecutor`` the lanes, their commits, and whatever those await on the same loop
    /// stay on that loop's thread: with the pool's connections there too, a batch's round trips to
    /// PostgreSQL never hand the lane to another thread. Isolation of a bad item works the same.
    @Test func onAnEventLoopExecutorCommitsAndTheirRoundTripsStayOnTheLoop() async throws {
        let url = try await TestDatabase.fresh("loop")
        let executor = EventLoopTaskExecutor()
        let client = Database.makePool(
            url: url, poolSize: 1, eventLoopGroup: executor.eventLoop, logger: TestDatabase.logger)
        let offLoop = Mutex(0)
        let ledger = Ledger()
        let committer = GroupCommitter<Int, Int>(maxBatch: 16, lanes: 2, executor: executor) { items in
            if !executor.eventLoop.inEventLoop { offLoop.withLock { $0 += 1 } }
            let answered = try await client.query("SELECT \(items.count)::int", logger: TestDatabase.logger)
                .decode(Int.self).reduce(0, +)
            if !executor.eventLoop.inEventLoop || answered != items.count { offLoop.withLock { $0 += 1 } }
            return try ledger.commit(items, poison: [13])
        }
        let results = try await withServiceGroup([client, committer]) { _ in
            await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
                for item in 0..<30 {
                    group.addTask {
                        do { return (item, .success(try await committer.submit(item))) } catch { return (item, .failure(error)) }
                    }
                }
                return await group.reduce(into: [Int: Result<Int, any Error>]()) { $0[$1.0] = $1.1 }
            }
        }
        #expect(offLoop.withLock { $0 } == 0, "every commit ran, and resumed after its query, on the loop")
        for (item, result) in results {
            if item == 13 {
                #expect(throws: Refused.self) { try result.get() }
            } else {
                #expect(try result.get() == item * 10, "item \(item)")
            }
        }
    }
}
