import KangyiPlatform
import Synchronization
import Testing

/// The chunk queue's promises: consumers take everything queued, the producer is held at capacity until
/// taken items are done, close drains then ends, a consumer's failure stops the producer, and a producer
/// held back gives up when cancelled.
@Suite struct ChunkQueueTests {
    struct Broken: Error {}

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
}
