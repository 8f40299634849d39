import KangyiPlatform
import Synchronization
import Testing

/// The shared capacity's promises: units are handed out first come first served within the capacity,
/// more than the capacity waits for an empty pool, and a cancelled wait takes nothing and lets those
/// behind it in.
@Suite struct SharedCapacityTests {
    final class Order: Sendable {
        let admitted = Mutex<[String]>([])
        func append(_ name: String) { admitted.withLock { $0.append(name) } }
        var names: [String] { admitted.withLock { $0 } }
    }

    @Test func waitsInOrderForRoomAndOversizedWaitsForAnEmptyPool() async throws {
        let capacity = SharedCapacity(capacity: 10)
        let order = Order()
        try await capacity.acquire(8)
        let big = Task {
            try await capacity.acquire(25)  // more than the capacity: alone
            order.append("big")
        }
        try await Task.sleep(for: .milliseconds(50))
        let small = Task {
            try await capacity.acquire(1)  // would fit, but waits behind the first in line
            order.append("small")
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(order.names.isEmpty)
        capacity.release(8)
        try await big.value
        try await Task.sleep(for: .milliseconds(50))
        #expect(order.names == ["big"])
        capacity.release(25)
        try await small.value
        #expect(order.names == ["big", "small"])
        #expect(capacity.held == 1)
    }

    @Test func aCancelledWaitTakesNothingAndLetsOthersIn() async throws {
        let capacity = SharedCapacity(capacity: 10)
        try await capacity.acquire(6)
        let blocked = Task { try await capacity.acquire(6) }
        try await Task.sleep(for: .milliseconds(50))
        let behind = Task { try await capacity.acquire(4) }
        try await Task.sleep(for: .milliseconds(50))
        blocked.cancel()
        await #expect(throws: CancellationError.self) { try await blocked.value }
        try await behind.value
        #expect(capacity.held == 10)
    }
}
