import Foundation
import GRPCCore
import KangyiPlatform

/// Who is calling the gateway: the holder of the bearer token, or `anonymous`. Used as the gateway's
/// identity resolver (``RequestContextInterceptor``), so the access log and metrics carry the caller —
/// and the identity the backends receive is the token's, never what the caller wrote in metadata.
struct BearerIdentity: Sendable {
    let tokens: TokenStore

    func resolve(_ metadata: Metadata) async -> CallerIdentity {
        let requestID = RequestID.of(metadata)
        guard let token = Self.bearer(in: metadata), let holder = try? await tokens.authenticate(token) else {
            return CallerIdentity(requestID: requestID)
        }
        return CallerIdentity(
            requestID: requestID, caller: holder.caller, department: holder.department, scopes: Set(holder.scopes))
    }

    /// The token of an `authorization: Bearer <token>` header.
    static func bearer(in metadata: Metadata) -> String? {
        metadata[stringValues: "authorization"].first(where: { _ in true }).flatMap(bearer(inHeader:))
    }

    /// The token of an `authorization` header's value.
    static func bearer(inHeader header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1].trimmingSpaces)
    }
}

/// The gateway's checks, in order: one live token (UNAUTHENTICATED), the method's scope
/// (PERMISSION_DENIED), the caller's rate (RESOURCE_EXHAUSTED with a retry delay). Runs innermost, so
/// every refusal is still logged and counted per caller and method.
struct Admission: Sendable {
    let tokens: TokenStore
    let limiter = RateLimiter()
    /// The scope each routed method needs.
    let required: [String: String]

    /// The holder allowed to call `method`, or the ServiceError that refuses the call.
    /// The holder of the token that admitted the call being handled (for ``OpenStreams``).
    @TaskLocal static var admitted: TokenHolder?

    func admit(method: MethodDescriptor, metadata: Metadata) async throws -> TokenHolder? {
        if Scopes.open.contains(method.service.fullyQualifiedService) { return nil }
        var authorizations = metadata[stringValues: "authorization"].makeIterator()
        let authorization = authorizations.next()
        // Two tokens: which one speaks for the call is not the gateway's to guess.
        guard authorizations.next() == nil else {
            throw ServiceError.unauthenticated(reason: "AMBIGUOUS_TOKEN", "send one `authorization` header, not several")
        }
        guard let token = authorization.flatMap(BearerIdentity.bearer(inHeader:)) else {
            throw ServiceError.unauthenticated(
                reason: "MISSING_TOKEN", "send `authorization: Bearer <token>` (tokens come from `kangyi token create`)")
        }
        let holder: TokenHolder?
        do {
            holder = try await tokens.authenticate(token)
        } catch {
            throw ServiceError.unavailable(reason: "TOKENS_UNAVAILABLE", "the gateway cannot check tokens right now")
        }
        guard let holder else {
            throw ServiceError.unauthenticated(reason: "INVALID_TOKEN", "the token is unknown, expired or revoked")
        }
        guard let scope = required[method.fullyQualifiedMethod] else {
            throw ServiceError.permissionDenied(reason: "METHOD_NOT_OPEN", "\(method.fullyQualifiedMethod) is not open to callers")
        }
        guard holder.scopes.contains(scope) else {
            throw ServiceError.permissionDenied(
                reason: "MISSING_SCOPE", "\(method.fullyQualifiedMethod) needs scope \(scope), which this token does not hold")
        }
        if let wait = limiter.take(holder) {
            throw ServiceError.resourceExhausted(
                reason: "RATE_LIMITED",
                "rate limit of \(holder.ratePerSecond)/s (burst \(holder.burst)) reached; retry after \(wait.inMicroseconds / 1000) ms",
                retryAfter: wait)
        }
        return holder
    }
}

/// ``Admission`` as the gateway server's innermost interceptor, after the size of the caller's headers
/// (``ForwardedMetadata/callerHeaderLimit``).
struct AdmissionInterceptor: ServerInterceptor {
    let admission: Admission

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let headerBytes = ForwardedMetadata.size(of: request.metadata)
        guard headerBytes <= ForwardedMetadata.callerHeaderLimit else { throw ForwardedMetadata.headersTooLarge(size: headerBytes) }
        let holder = try await admission.admit(method: context.descriptor, metadata: request.metadata)
        return try await Admission.$admitted.withValue(holder) { try await next(request, context) }
    }
}
