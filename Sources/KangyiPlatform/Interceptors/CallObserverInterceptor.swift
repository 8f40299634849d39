import GRPCCore
import Logging
import Metrics

/// Writes one structured log line per RPC — method, status code, duration, request id, caller — and counts
/// it in the metrics per method and status. The line never holds message contents, so no personal data.
/// Sits inside ``RequestContextInterceptor`` and outside ``ErrorMappingInterceptor``, so it sees the final code.
public struct CallObserverInterceptor: ServerInterceptor {
    let logger: Logger
    let metrics: RPCMetrics

    public init(logger: Logger, metrics: RPCMetrics) {
        self.logger = logger
        self.metrics = metrics
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let start = ContinuousClock.now
        let method = context.descriptor.fullyQualifiedMethod
        let identity = CallerIdentity.current
        do {
            var response = try await next(request, context)
            switch response.accepted {
            case .success:
                // A call whose caller left before its answer's headers went out is never produced: it
                // is logged and counted as cancelled when its response is dropped.
                let unanswered = WhenResponseIsDone { [self] in
                    finish(method: method, code: "cancelled", identity: identity, since: start, message: "the caller left before the answer")
                }
                response.wrapProducer { [self] produce in
                    defer { unanswered.dismiss() }
                    do {
                        let trailers = try await produce()
                        finish(method: method, code: "ok", identity: identity, since: start, message: nil)
                        return trailers
                    } catch {
                        finish(method: method, error: error, identity: identity, since: start)
                        throw error
                    }
                }
            case .failure(let error):
                finish(method: method, error: error, identity: identity, since: start)
            }
            return response
        } catch {
            finish(method: method, error: error, identity: identity, since: start)
            throw error
        }
    }

    private func finish(method: String, error: any Error, identity: CallerIdentity, since start: ContinuousClock.Instant) {
        let rpcError = error as? RPCError
        finish(
            method: method, code: rpcError.map { Self.name(of: $0.code) } ?? "unknown", identity: identity,
            since: start, message: rpcError?.message)
    }

    /// One finished call: its access-log line (`event`: `rpc`, or `http` for the gateway's JSON door) and
    /// its metrics. Other doors into a process (the gateway's HTTP one) record their calls here too.
    public func finish(
        method: String, code: String, identity: CallerIdentity, since start: ContinuousClock.Instant, message: String?,
        event: Logger.Message = "rpc"
    ) {
        let elapsed = ContinuousClock.now - start
        metrics.record(method: method, code: code, caller: identity.caller, duration: elapsed)
        var fields: Logger.Metadata = [
            "method": "\(method)",
            "code": "\(code)",
            "duration_ms": "\(Self.milliseconds(elapsed))",
            "request_id": "\(identity.requestID)",
            "caller": "\(identity.caller)",
        ]
        // Status messages are written by Kangyi's own code and never quote request values.
        if let message, !message.isEmpty { fields["error"] = "\(message)" }
        logger.info(event, metadata: fields)
    }

    public static func milliseconds(_ duration: Duration) -> String {
        String(format3: Double(duration.inMicroseconds) / 1000)
    }

    /// gRPC's canonical lower-case status names (`ok`, `invalid_argument`, ...), as metric labels.
    public static func name(of code: RPCError.Code) -> String {
        switch code {
        case .cancelled: "cancelled"
        case .unknown: "unknown"
        case .invalidArgument: "invalid_argument"
        case .deadlineExceeded: "deadline_exceeded"
        case .notFound: "not_found"
        case .alreadyExists: "already_exists"
        case .permissionDenied: "permission_denied"
        case .resourceExhausted: "resource_exhausted"
        case .failedPrecondition: "failed_precondition"
        case .aborted: "aborted"
        case .outOfRange: "out_of_range"
        case .unimplemented: "unimplemented"
        case .internalError: "internal"
        case .unavailable: "unavailable"
        case .dataLoss: "data_loss"
        case .unauthenticated: "unauthenticated"
        default: "unknown"
        }
    }
}

extension String {
    /// A number with three decimals, without Foundation's formatter.
    init(format3 value: Double) {
        let scaled = Int((value * 1000).rounded())
        let whole = scaled / 1000
        let fraction = abs(scaled % 1000)
        let digits = String(fraction)
        self = "\(whole).\(String(repeating: "0", count: 3 - digits.count))\(digits)"
    }
}
