import GRPCCore

/// Outermost interceptor: establishes the caller's identity and request id (minting an id when none
/// came), makes them available as `CallerIdentity.current` for the whole RPC, and returns the request id
/// to the caller in the response's initial metadata (or the error's trailers).
///
/// Backends trust the gateway's metadata (the default `resolve`); the gateway resolves identities from
/// bearer tokens instead.
public struct RequestContextInterceptor: ServerInterceptor {
    let resolve: @Sendable (Metadata) async -> CallerIdentity

    public init(resolve: @escaping @Sendable (Metadata) async -> CallerIdentity = { CallerIdentity(metadata: $0) }) {
        self.resolve = resolve
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let identity = await resolve(request.metadata)
        do {
            var response = try await CallerIdentity.$current.withValue(identity) {
                try await next(request, context)
            }
            response.wrapProducer { produce in
                try await CallerIdentity.$current.withValue(identity) { try await produce() }
            }
            response.metadata.replaceOrAddString(identity.requestID, forKey: CallerIdentity.requestIDKey)
            return response
        } catch var error as RPCError {
            error.metadata.replaceOrAddString(identity.requestID, forKey: CallerIdentity.requestIDKey)
            throw error
        }
    }
}
