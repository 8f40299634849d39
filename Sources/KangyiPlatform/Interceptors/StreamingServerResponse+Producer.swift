import GRPCCore

extension StreamingServerResponse {
    /// Runs `around` around the producer: the part of every response (unary ones included) that executes
    /// after the interceptors have returned. Interceptors that must see the end of an RPC (its status, its
    /// duration) or keep a task-local value for it wrap the producer this way.
    mutating func wrapProducer(
        _ around: @escaping @Sendable (_ produce: @Sendable () async throws -> Metadata) async throws -> Metadata
    ) {
        guard case .success(var contents) = accepted else { return }
        let inner = contents.producer
        contents.producer = { writer in try await around { try await inner(writer) } }
        accepted = .success(contents)
    }
}
