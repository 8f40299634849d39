import GRPCCore

/// Outermost interceptor: reads the caller's identity and request id from metadata (minting an id when
/// none came), makes them available as `CallerIdentity.current` for the whole RPC, and returns the
/// request id to the caller in the response's initial metadata (or the error's trailers).
public struct RequestContextInterceptor: ServerInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let identity = CallerIdentity(metadata: request.metadata)
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
