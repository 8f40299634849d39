import GRPCCore
import Synchronization

/// Refuses calls beyond `limit` in flight on this server at once — RESOURCE_EXHAUSTED at once, with a
/// retry hint — so that under overload the server keeps answering what it can at its normal latency
/// instead of queueing everyone into their deadlines. Long-lived server streams (watches) do not count.
/// Sits inside the access log and error mapping, so refusals are logged and counted.
public struct LoadSheddingInterceptor: ServerInterceptor {
    public let inFlight: InFlightLimit

    public init(limit: Int, index: DescriptorIndex = .embedded) {
        self.init(inFlight: InFlightLimit(limit: limit, index: index))
    }

    /// Counting in `inFlight`, which other doors to the same server may share (the gateway's front door).
    public init(inFlight: InFlightLimit) {
        self.inFlight = inFlight
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if !inFlight.counts(context.descriptor.fullyQualifiedMethod) { return try await next(request, context) }
        guard inFlight.enter() else { throw Self.atCapacity(limit: inFlight.limit) }
        // Given back once: when the response has been produced, or dropped unproduced (a call whose
        // caller left before its answer's headers went out). Released only in the producer, such calls
        // kept their slots: under 2× overload in `make bench` all 64 leaked within four seconds, and the
        // server refused everything after.
        let slot = WhenResponseIsDone { [inFlight] in inFlight.leave() }
        do {
            var response = try await next(request, context)
            guard case .success = response.accepted else {
                slot.run()
                return response
            }
            response.wrapProducer { produce in
                defer { slot.run() }
                return try await produce()
            }
            return response
        } catch {
            slot.run()
            throw error
        }
    }
}

extension LoadSheddingInterceptor {
    /// The refusal, here and in ``ShedsAtCapacity``.
    static func atCapacity(limit: Int) -> ServiceError {
        .resourceExhausted(
            reason: "SERVER_AT_CAPACITY", "the server has \(limit) calls in flight; retry shortly", retryAfter: .seconds(1))
    }
}

/// A server's calls in flight against `KANGYI_MAX_IN_FLIGHT`: one count per server, whichever door a call
/// came in by. Long-lived server streams (watches) do not count, nor health checks: Kubernetes' gRPC
/// probes call `Health/Check`, and a replica refusing them while at capacity would be taken out of
/// service (its load moving to the others, which then fill too) and, after three, restarted.
public final class InFlightLimit: Sendable {
    public let limit: Int
    /// Methods exempt from the count (health, and server-streaming ones of the embedded contracts).
    let exempt: Set<String>
    private let count = Mutex(0)

    public init(limit: Int, index: DescriptorIndex = .embedded) {
        self.limit = limit
        var exempt: Set<String> = ["grpc.health.v1.Health/Watch", "grpc.health.v1.Health/Check"]
        for file in index.files.values {
            for service in file.service {
                for method in service.method where method.serverStreaming {
                    exempt.insert("\(file.package).\(service.name)/\(method.name)")
                }
            }
        }
        self.exempt = exempt
    }

    /// Whether a call of `method` (`package.Service/Method`) counts against the limit.
    public func counts(_ method: String) -> Bool { !exempt.contains(method) }

    /// Takes a slot if one is free.
    public func enter() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    public func leave() { count.withLock { $0 -= 1 } }

    public var current: Int { count.withLock { $0 } }

    /// Every slot is taken.
    var isFull: Bool { count.withLock { $0 >= limit } }
}
