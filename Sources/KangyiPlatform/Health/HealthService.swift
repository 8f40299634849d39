import GRPCCore
import KangyiAPI

/// `grpc.health.v1.Health`, answered from the ``HealthBoard``.
///
/// One name more than the board knows: `liveness` is SERVING whenever the process answers at all. A
/// Kubernetes liveness probe asks for it, so a database outage (which turns every service NOT_SERVING
/// and takes the replica out of its Service's endpoints) never makes the kubelet restart healthy
/// processes that could not fix it; readiness asks for "" and sees the database.
public struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let board: HealthBoard
    public static let liveness = "liveness"

    public init(board: HealthBoard) {
        self.board = board
    }

    public func check(
        request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        if request.service == Self.liveness { return .with { $0.status = .serving } }
        guard let status = board.status(of: request.service) else {
            throw RPCError(code: .notFound, message: "unknown service \(request.service)")
        }
        return .with { $0.status = Self.wire(status) }
    }

    public func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        let (updates, continuation) = board.updates(of: request.service)
        // A client that goes away cancels the RPC, not this task: end the stream when that happens.
        try await withRPCCancellationHandler {
            for await status in updates {
                try await response.write(.with { $0.status = status.map(Self.wire) ?? .serviceUnknown })
            }
        } onCancelRPC: {
            continuation.finish()
        }
    }

    static func wire(_ status: HealthBoard.Status) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        switch status {
        case .serving: .serving
        case .notServing: .notServing
        }
    }
}
