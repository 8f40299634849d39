import GRPCCore
import ServiceLifecycle
import Synchronization

/// A backend's gRPC clients as the gateway's server and its JSON door use them: each client its own
/// connections, none carrying more than ``callsPerClient`` calls, and none kept for new calls once its
/// callers' cancellations have spent its ``ResetBudget``.
///
/// A call whose caller leaves before the answer resets its stream to the backend, and a backend ends a
/// connection whose peer resets more than 200 streams in 30 s, losing every call still on it
/// (``BackendLink`` says why). Calls pile up on one connection — watches stay open for hours — and their
/// callers can leave together: 300 JSON watchers whose callers had gone, woken by one new help request,
/// ended the connection to intake and the watch of the one caller still there. With at most 100 calls a
/// client no burst of cancels reaches the backend's limit, and a client whose cancels add up over time
/// takes no new calls: a new client does, and the old one closes once its calls have ended.
final class BackendClients<Transport: ClientTransport>: Service, Sendable {
    typealias Make = @Sendable () throws -> GRPCClient<Transport>

    /// Half the backend's limit of resets: all of a client's calls may be cancelled at once.
    static var callsPerClient: Int { 100 }

    private struct Member {
        let client: GRPCClient<Transport>
        var calls = 0
        var resets: ResetBudget
        var retired = false
    }

    private struct State {
        var members: [Int: Member] = [:]
        var nextID = 0
        var stopping = false
    }

    private let make: Make
    private let callsPerClient: Int
    private let resetBudget: Int
    private let state = Mutex(State())
    /// Clients whose connections ``run()`` is to run, as they are made.
    private let clients: AsyncStream<GRPCClient<Transport>>
    private let starting: AsyncStream<GRPCClient<Transport>>.Continuation
    /// Told each time a client is retired for its cancelled calls (a metric).
    private let onRetire: @Sendable () -> Void

    init(
        callsPerClient: Int = BackendClients.callsPerClient, resetBudget: Int = ResetBudget.resets,
        onRetire: @escaping @Sendable () -> Void = {}, make: @escaping Make
    ) {
        self.make = make
        self.callsPerClient = callsPerClient
        self.resetBudget = resetBudget
        self.onRetire = onRetire
        (clients, starting) = AsyncStream.makeStream()
    }

    /// `body` with a client that has room: the oldest that does, or a new one. A call that ends cancelled
    /// (its caller left) counts against its client.
    func call<Result>(_ body: (GRPCClient<Transport>) async throws -> Result) async throws -> Result {
        let (id, client) = try state.withLock { state in
            var oldest: Int?
            for (id, member) in state.members where !member.retired && member.calls < callsPerClient {
                if id < oldest ?? .max { oldest = id }
            }
            if let id = oldest {
                state.members[id]!.calls += 1
                return (id, state.members[id]!.client)
            }
            guard !state.stopping else { throw RPCError(code: .unavailable, message: "the gateway is shutting down") }
            let client = try make()
            starting.yield(client)
            let id = state.nextID
            state.nextID += 1
            state.members[id] = Member(client: client, calls: 1, resets: ResetBudget(resets: resetBudget))
            return (id, client)
        }
        do {
            let result = try await body(client)
            ended(id, cancelled: false)
            return result
        } catch {
            ended(id, cancelled: Task.isCancelled)
            throw error
        }
    }

    private func ended(_ id: Int, cancelled: Bool) {
        let (retiring, closing) = state.withLock { state -> (Bool, GRPCClient<Transport>?) in
            guard var member = state.members[id] else { return (false, nil) }
            member.calls -= 1
            var retiring = false
            if cancelled, !member.retired {
                retiring = member.resets.spend()
                member.retired = retiring
            }
            if member.retired, member.calls == 0 {
                state.members[id] = nil
                return (retiring, member.client)
            }
            state.members[id] = member
            return (retiring, nil)
        }
        if retiring { onRetire() }
        closing?.beginGracefulShutdown()
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await client in clients {
                    group.addTask { try? await client.runConnections() }
                }
            }
        } onGracefulShutdown: {
            let members = self.state.withLock { state in
                state.stopping = true
                return state.members.values.map(\.client)
            }
            self.starting.finish()
            for client in members { client.beginGracefulShutdown() }
        }
    }
}
