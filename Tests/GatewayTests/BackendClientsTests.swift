import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiPlatform
import KangyiTestSupport
import ServiceLifecycle
import Synchronization
import Testing

@testable import KangyiGateway

/// ``BackendClients`` gives no client more than its share of calls, and takes a client whose callers
/// cancelled its budget of calls out of use — its calls still on it — so that no backend sees more
/// resets on one connection than it allows. The calls here never touch the network: which client each
/// call was given is what is checked.
@Suite struct BackendClientsTests {
    final class Count: Sendable {
        private let count = Mutex(0)
        func add() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }
    }

    /// Clients to an address where nothing listens, counted as they are made and retired.
    static func clients(made: Count, retired: Count) -> BackendClients<HTTP2ClientTransport.Posix> {
        BackendClients(callsPerClient: 2, resetBudget: 3, onRetire: { retired.add() }) {
            made.add()
            return try PeerClient.makeClient(name: "nowhere", address: "127.0.0.1:9", key: TestIdentity.key)
        }
    }

    /// A call that holds its client until released (then answers which client it was given), or until
    /// cancelled.
    static func held(_ clients: BackendClients<HTTP2ClientTransport.Posix>)
        -> (call: Task<ObjectIdentifier, any Error>, release: AsyncStream<Void>.Continuation)
    {
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let call = Task {
            try await clients.call { client in
                for await _ in released { break }
                try Task.checkCancellation()
                return ObjectIdentifier(client)
            }
        }
        return (call, release)
    }

    @Test func noClientCarriesMoreThanItsShareOfCalls() async throws {
        let made = Count(), retired = Count()
        let clients = Self.clients(made: made, retired: retired)
        try await withServiceGroup([clients]) { group in
            let calls = (0..<5).map { _ in Self.held(clients) }
            while made.value < 3 { try await Task.sleep(for: .milliseconds(5)) }
            try await Task.sleep(for: .milliseconds(50))
            for call in calls { call.release.yield() }
            var given: [ObjectIdentifier: Int] = [:]
            for call in calls { given[try await call.call.value, default: 0] += 1 }
            #expect(given.values.sorted() == [1, 2, 2], "five calls at once over clients of two")
            #expect(made.value == 3)
            // With every call over, the first client takes the next one: nothing new is made.
            let next = try await clients.call { ObjectIdentifier($0) }
            #expect(given[next] == 2)
            #expect(made.value == 3)
            #expect(retired.value == 0)
            await group.triggerGracefulShutdown()
        }
    }

    @Test func aClientWhoseCallersCancelledItsBudgetTakesNoNewCalls() async throws {
        let made = Count(), retired = Count()
        let clients = Self.clients(made: made, retired: retired)
        try await withServiceGroup([clients]) { group in
            let first = try await clients.call { ObjectIdentifier($0) }
            for round in 1...3 {
                let (call, _) = Self.held(clients)
                try await Task.sleep(for: .milliseconds(20))
                call.cancel()
                await #expect(throws: CancellationError.self) { try await call.value }
                #expect(retired.value == (round == 3 ? 1 : 0), "after \(round) cancelled")
            }
            let after = try await clients.call { ObjectIdentifier($0) }
            #expect(after != first, "a new client takes the calls")
            #expect(made.value == 2)
            await group.triggerGracefulShutdown()
        }
    }
}
