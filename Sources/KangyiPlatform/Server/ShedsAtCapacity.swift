import Foundation
import GRPCCore
import GRPCProtobuf
import Logging
import NIOHPACK
import Synchronization

/// The in-flight limit's refusal, answered by ``RequestHeaderGuard`` from a call's headers before
/// grpc-swift starts the call, while every slot is taken. Through grpc-swift and the interceptors a
/// refusal cost intake's loop about as much as a call of the no-op (0.13 ms: 7,260 refusals/s at 32
/// callers filled it), so under overload refusing the excess crowded out the calls it was admitted for;
/// here 0.11 ms (the rest is NIOHTTP2's stream channel and grpc-swift's task for the stream).
/// The answer is the ``LoadSheddingInterceptor``'s status (RESOURCE_EXHAUSTED, its message, ErrorInfo
/// and RetryInfo), made once per method; the interceptor still refuses a call that finds the last slot
/// taken after its headers passed here. Refusals are counted in `kangyi_rpc_total` as
/// `caller="unchecked"` (no identity was checked) and logged once a second with their number, not a
/// line each.
final class ShedsAtCapacity: Sendable {
    private let inFlight: InFlightLimit
    /// The trailers-only answer by `:path`, for the methods that count against the limit.
    private let refusals: [String: (method: String, headers: HPACKHeaders)]
    private let metrics: RPCMetrics
    private let logger: Logger
    private let sinceNotice = Mutex<(refused: Int, last: ContinuousClock.Instant)>((0, .now))

    init(inFlight: InFlightLimit, methods: [MethodDescriptor], metrics: RPCMetrics, logger: Logger) {
        self.inFlight = inFlight
        self.metrics = metrics
        self.logger = logger
        var refusals: [String: (String, HPACKHeaders)] = [:]
        let error = LoadSheddingInterceptor.atCapacity(limit: inFlight.limit)
        for method in methods where inFlight.counts(method.fullyQualifiedMethod) {
            let status = error.googleStatus(domain: method.service.fullyQualifiedService)
            let details = (try? status.serializedBytes() as [UInt8]).map { Data($0).base64EncodedString() } ?? ""
            refusals["/" + method.fullyQualifiedMethod] = (
                method.fullyQualifiedMethod,
                [
                    ":status": "200", "content-type": "application/grpc", "grpc-status": "\(Status.Code.resourceExhausted.rawValue)",
                    "grpc-message": error.message, "grpc-status-details-bin": details,
                ]
            )
        }
        self.refusals = refusals
    }

    /// The answer to a call with these headers while the server is at its limit; nil while it has room
    /// (the one check every call pays, an uncontended lock) or for a method that does not count.
    func refusal(for headers: HPACKHeaders) -> HPACKHeaders? {
        guard inFlight.isFull, let path = headers.first(name: ":path"), let refusal = refusals[path] else { return nil }
        metrics.record(method: refusal.method, code: "resource_exhausted", caller: "unchecked", duration: .zero)
        let refused = sinceNotice.withLock { since -> Int? in
            since.refused += 1
            guard ContinuousClock.now - since.last >= .seconds(1) else { return nil }
            defer { since = (0, .now) }
            return since.refused
        }
        if let refused {
            logger.notice("shedding load", metadata: ["refused": "\(refused)", "limit": "\(inFlight.limit)"])
        }
        return refusal.headers
    }
}
