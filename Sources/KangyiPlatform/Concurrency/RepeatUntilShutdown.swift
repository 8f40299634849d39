import GRPCCore
import Logging
import ServiceLifecycle

/// The loop of a background service (an outbox relay, a sweeper, a stream follower): runs `body`, waits
/// `interval`, again, until graceful shutdown or cancellation. A failed round is logged (without values)
/// and the next one tries again; a round cut short by shutdown is not an error.
public func repeatUntilShutdown(
    every interval: Duration, logger: Logger, failure: Logger.Message, _ body: @escaping @Sendable () async throws -> Void
) async {
    await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            do {
                try await body()
            } catch {
                if Task.isCancelled { break }
                logger.warning(failure, metadata: ["error": "\(loggableDescription(of: error))"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}

/// An error as a log line may show it: an RPC's code and message, a database error without row values.
public func loggableDescription(of error: any Error) -> String {
    if let rpc = error as? RPCError { return "\(rpc.code): \(rpc.message)" }
    return DatabaseErrorKind.redactedDescription(of: error)
}
