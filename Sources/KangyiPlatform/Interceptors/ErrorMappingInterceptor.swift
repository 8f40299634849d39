import GRPCCore
import GRPCProtobuf
import Logging
import NIOHTTP2

/// Innermost interceptor: turns whatever a handler throws into the status the caller should see.
/// - ``ServiceError`` → its code, with `ErrorInfo` (+ `BadRequest`) details; the domain is the gRPC service.
/// - `RPCError` → unchanged (the library's own, e.g. a message that does not decode), except its INTERNAL
///   for a request that is not one whole gRPC message → INVALID_ARGUMENT (``malformedRequest``).
/// - PostgreSQL unreachable → UNAVAILABLE; serialization conflict → ABORTED.
/// - a write to a stream the caller already reset → CANCELLED, not logged as a fault.
/// - anything else → INTERNAL with a generic message; the detail goes only to the log, without values.
public struct ErrorMappingInterceptor: ServerInterceptor {
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let domain = context.descriptor.service.fullyQualifiedService
        let cancellation = context.cancellation
        do {
            var response = try await next(request, context)
            // An interceptor inside this one that threw something other than an RPCError has been turned
            // into a rejected response by grpc-swift (UNKNOWN, the error kept as the cause): map that cause
            // like any other error. Rejections grpc-swift makes itself (a message that does not decode)
            // keep their own code, but for its INTERNAL about a malformed request.
            if case .failure(let rejected) = response.accepted {
                if rejected.code == .unknown, let cause = rejected.cause, !(cause is RPCError) {
                    response.accepted = .failure(
                        Self.rpcError(for: cause, domain: domain, cancelled: cancellation.isCancelled, logger: logger))
                } else {
                    response.accepted = .failure(Self.callersFault(rejected, domain: domain))
                }
            }
            response.wrapProducer { [logger] produce in
                do { return try await produce() } catch {
                    throw Self.rpcError(for: error, domain: domain, cancelled: cancellation.isCancelled, logger: logger)
                }
            }
            return response
        } catch {
            throw Self.rpcError(for: error, domain: domain, cancelled: cancellation.isCancelled, logger: logger)
        }
    }

    /// grpc-swift's own complaints about a request that is not one whole gRPC message, by their text. They
    /// come as INTERNAL, which says the server failed; the fault is the caller's, so INVALID_ARGUMENT says
    /// what was wrong. (Should the library reword one, it is INTERNAL again, not misreported.)
    static let malformedRequest = [
        "Empty stream.": "the request carried no whole message; a unary call takes exactly one",
        "Too many messages.": "the request carried more than one message; a unary call takes exactly one",
        "Failed to decode message":
            "the request's gRPC framing could not be read (a compressed message without grpc-encoding, or a length beyond the size limit)",
    ]

    /// `error`, or INVALID_ARGUMENT when it is one of grpc-swift's ``malformedRequest`` complaints.
    static func callersFault(_ error: RPCError, domain: String) -> RPCError {
        guard error.code == .internalError, let malformed = malformedRequest[error.message] else { return error }
        return RPCError(
            ServiceError.invalidArgument(field: "request", reason: "MALFORMED_REQUEST", malformed).googleStatus(domain: domain))
    }

    /// - Parameter cancelled: the caller went away (or the deadline passed); whatever failed after that,
    ///   e.g. a write to the closed stream, is a consequence, not a fault worth an error log.
    public static func rpcError(for error: any Error, domain: String, cancelled: Bool = false, logger: Logger)
        -> RPCError
    {
        if cancelled, !(error is ServiceError) {
            return RPCError(code: .cancelled, message: "the RPC was cancelled")
        }
        switch error {
        case let error as RPCError:
            return callersFault(error, domain: domain)
        case let error as ServiceError:
            return RPCError(error.googleStatus(domain: domain))
        case let error as any RPCErrorConvertible:
            return RPCError(error)
        case is CancellationError:
            return RPCError(code: .cancelled, message: "the RPC was cancelled")
        case is NIOHTTP2Errors.StreamClosed:
            // The caller reset the stream before its answer was written (a cancel, a passed deadline),
            // and the RPC's cancellation may not be flagged yet. Under 2× overload these were hundreds
            // of error-level "unexpected error" lines, and INTERNAL in the metrics.
            return RPCError(code: .cancelled, message: "the caller closed the stream")
        default:
            break
        }
        let requestID = CallerIdentity.current.requestID
        switch DatabaseErrorKind(error) {
        case .unavailable:
            logger.warning("database unavailable", metadata: ["error": "\(DatabaseErrorKind.redactedDescription(of: error))"])
            let status = ServiceError.unavailable(reason: "DATABASE_UNAVAILABLE", "the database is unavailable; retry later")
            return RPCError(status.googleStatus(domain: domain))
        case .conflict:
            let status = ServiceError(code: .aborted, reason: "CONCURRENT_UPDATE", message: "a concurrent update conflicted; retry")
            return RPCError(status.googleStatus(domain: domain))
        default:
            logger.error(
                "unexpected error",
                metadata: [
                    "request_id": "\(requestID)",
                    "error": "\(DatabaseErrorKind.redactedDescription(of: error))",
                ])
            let status = ServiceError(
                code: .internalError, reason: "INTERNAL",
                message: "internal error; quote request id \(requestID) when reporting it")
            return RPCError(status.googleStatus(domain: domain))
        }
    }
}
