import GRPCCore
import KangyiAPI

/// `grpc.reflection.v1alpha.ServerReflection`: the same protocol under its pre-1.0 name, which some
/// clients (Python's grpcio-reflection among them) still speak. The messages are identical on the wire,
/// so each request is re-read as v1 and answered by ``ReflectionService``.
public struct ReflectionServiceV1Alpha: Grpc_Reflection_V1alpha_ServerReflection.SimpleServiceProtocol {
    let v1: ReflectionService

    public init(_ v1: ReflectionService) {
        self.v1 = v1
    }

    public func serverReflectionInfo(
        request: RPCAsyncSequence<Grpc_Reflection_V1alpha_ServerReflectionRequest, any Error>,
        response: RPCWriter<Grpc_Reflection_V1alpha_ServerReflectionResponse>,
        context: ServerContext
    ) async throws {
        for try await message in request {
            let question = try Grpc_Reflection_V1_ServerReflectionRequest(serializedBytes: try message.serializedBytes() as [UInt8])
            let answer = v1.answer(question)
            try await response.write(
                Grpc_Reflection_V1alpha_ServerReflectionResponse(serializedBytes: try answer.serializedBytes() as [UInt8]))
        }
    }
}
