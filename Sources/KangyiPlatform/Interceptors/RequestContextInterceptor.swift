import GRPCCore

/// Outermost interceptor: establishes the caller's identity and request id (minting an id when none
/// came), makes them available as `CallerIdentity.current` for the whole RPC, and returns the request id
/// to the caller in the response's initial metadata (or the error's trailers). It also keeps the call's
/// deadline: `GRPCTimeout.deadline` for the whole RPC, and, for a timeout the header guard took from
/// grpc-swift (``GRPCTimeout/receivedKey``), the timer that ends the call there (``ServerDeadline``).
///
/// Backends believe identity metadata only when it is signed under `key` for the method being called
/// (``SignedIdentity``); an identity that does not verify is recorded as a refusal, which
/// ``IdentityCheckInterceptor`` turns into UNAUTHENTICATED once the call is logged. The gateway resolves
/// identities from bearer tokens instead.
public struct RequestContextInterceptor: ServerInterceptor {
    let resolve: @Sendable (Metadata, MethodDescriptor) async -> CallerIdentity

    /// A backend's: signed identities under `key` (none at all when nil).
    public init(key: IdentityKey?) {
        self.resolve = { metadata, method in SignedIdentity.verify(metadata, method: method.fullyQualifiedMethod, key: key) }
    }

    /// A resolver of its own (the gateway's bearer tokens).
    public init(resolve: @escaping @Sendable (Metadata, MethodDescriptor) async -> CallerIdentity) {
        self.resolve = resolve
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let moved = request.metadata[stringValues: GRPCTimeout.receivedKey].first(where: { _ in true })
        let timeout = GRPCTimeout.decode(moved ?? request.metadata[stringValues: "grpc-timeout"].first(where: { _ in true }))
        let deadline = timeout.map { ContinuousClock.now + $0 }
        // Stopped when the response is done with, produced or not (a call without a guard in front — an
        // in-process transport — is timed by grpc-swift as before).
        let timer = moved == nil ? nil : timeout.flatMap { ServerDeadline.start(after: $0, cancelling: context.cancellation) }
        let stopTimer = timer.map { timer in WhenResponseIsDone { timer.cancel() } }
        let identity = await resolve(request.metadata, context.descriptor)
        do {
            var response = try await GRPCTimeout.$deadline.withValue(deadline) {
                try await CallerIdentity.$current.withValue(identity) { try await next(request, context) }
            }
            response.wrapProducer { produce in
                defer { stopTimer?.run() }
                return try await GRPCTimeout.$deadline.withValue(deadline) {
                    try await CallerIdentity.$current.withValue(identity) { try await produce() }
                }
            }
            response.metadata.replaceOrAddString(identity.requestID, forKey: CallerIdentity.requestIDKey)
            return response
        } catch var error as RPCError {
            error.metadata.replaceOrAddString(identity.requestID, forKey: CallerIdentity.requestIDKey)
            throw error
        }
    }
}

/// Refuses a call whose identity metadata did not verify (``CallerIdentity/refusal``) with
/// UNAUTHENTICATED. Health and reflection stay open to anyone: probes and tools send no identity, and
/// what they answer is not personal.
public struct IdentityCheckInterceptor: ServerInterceptor {
    static let open: Set<String> = [
        "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    ]

    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if let refusal = CallerIdentity.current.refusal, !Self.open.contains(context.descriptor.service.fullyQualifiedService) {
            throw ServiceError.unauthenticated(reason: refusal.reason, refusal.message)
        }
        return try await next(request, context)
    }
}
