import KangyiPlatform
import Synchronization
import Testing

/// The chunk queue's promises: consumers take everything queued, the producer is held at capacity until
/// taken items are done, close drains then ends, a consumer's failure stops the producer, and a producer
/// held back gives up when cancelled.
@Suite struct ChunkQueueTests {
    struct Broken: Error {}
    final class Counter: Sendable { let value = Atomic(0) }

    @Test func takesEverythingQueuedAndHoldsTheProducerAtCapacity() async throws {
        let queue = ChunkQueue<Int>(capacity: 4)
        for item in 0..<4 { try await queue.put(item) }
        let fifth = Task { try await queue.put(4) }  // no room: held back
        try await Task.sleep(for: .milliseconds(50))
        #expect(await queue.take() == [0, 1, 2, 3])  // taken, not done: still no room
        try await Task.sleep(for: .milliseconds(50))
        queue.done(2)
        try await fifth.value
        queue.close()
        #expect(await queue.take() == [4])
        #expect(await queue.take() == nil)
    }

    @Test func severalAtOnceWaitForRoomForAllAndMoreThanCapacityGoInAlone() async throws {
        let queue = ChunkQueue<Int>(capacity: 4)
        let admitted = Counter()
        try await queue.put(contentsOf: [0, 1, 2])
        let batch = Task {
            try await queue.put(contentsOf: [3, 4, 5])
            admitted.value.add(1, ordering: .sequentiallyConsistent)
        }
        #expect(await queue.take() == [0, 1, 2])
        queue.done(1)  // two held: three more do not fit
        try await Task.sleep(for: .milliseconds(50))
        #expect(admitted.value.load(ordering: .sequentiallyConsistent) == 0)
        queue.done(1)
        try await batch.value
        #expect(await queue.take() == [3, 4, 5])
        queue.done(3)  // one held
        let oversized = Task {
            try await queue.put(contentsOf: Array(6..<12))  // more than capacity: waits for an empty queue
            admitted.value.add(1, ordering: .sequentiallyConsistent)
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(admitted.value.load(ordering: .sequentiallyConsistent) == 1)
        queue.done(1)
        try await oversized.value
        #expect(await queue.take() == Array(6..<12))
    }

    @Test func aWaitingConsumerGetsTheFirstItemAtOnce() async throws {
        let queue = ChunkQueue<Int>(capacity: 8)
        let consumer = Task { await queue.take() }
        try await Task.sleep(for: .milliseconds(50))
        try await queue.put(7)
        #expect(await consumer.value == [7])
    }

    @Test func aFailedConsumerStopsTheProducer() async throws {
        let queue = ChunkQueue<Int>(capacity: 1)
        try await queue.put(1)
        let held = Task { try await queue.put(2) }
        try await Task.sleep(for: .milliseconds(50))
        queue.fail(Broken())
        await #expect(throws: Broken.self) { try await held.value }
        await #expect(throws: Broken.self) { try await queue.put(3) }
    }

    @Test func aHeldProducerGivesUpWhenCancelled() async throws {
        let queue = ChunkQueue<Int>(capacity: 1)
        try await queue.put(1)
        let held = Task { try await queue.put(2) }
        try await Task.sleep(for: .milliseconds(50))
        held.cancel()
        await #expect(throws: CancellationError.self) { try await held.value }
    }

    /// Units of a shared capacity follow the elements: acquired by `put`, given back by `done`, by a
    /// refused `put`, and — for what is still queued or taken — when the queue goes.
    @Test func sharedUnitsFollowTheElementsAndGoBackWithTheQueue() async throws {
        let shared = SharedCapacity(capacity: 100)
        do {
            let queue = ChunkQueue<Int>(capacity: 10, shared: shared)
            try await queue.put(contentsOf: [1, 2, 3])
            #expect(shared.held == 3)
            #expect(await queue.take() == [1, 2, 3])
            queue.done(2)
            #expect(shared.held == 1)
            try await queue.put(4)
            queue.fail(Broken())
            await #expect(throws: Broken.self) { try await queue.put(5) }
            #expect(shared.held == 2)  // one taken and not done, one queued
        }
        #expect(shared.held == 0)
    }
}
