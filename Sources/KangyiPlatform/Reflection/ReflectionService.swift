import Foundation
import GRPCCore
import KangyiAPI

/// `grpc.reflection.v1.ServerReflection`: lets grpcurl-style tools list this server's services and fetch
/// the proto files that describe them, from the descriptor set embedded at build time.
public struct ReflectionService: Grpc_Reflection_V1_ServerReflection.SimpleServiceProtocol {
    let index: DescriptorIndex
    let serviceNames: [String]

    /// - Parameter serviceNames: the fully-qualified gRPC services this server offers.
    public init(serviceNames: [String], index: DescriptorIndex = .embedded) {
        self.index = index
        self.serviceNames = serviceNames.sorted()
    }

    public func serverReflectionInfo(
        request: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionRequest, any Error>,
        response: RPCWriter<Grpc_Reflection_V1_ServerReflectionResponse>,
        context: ServerContext
    ) async throws {
        for try await message in request {
            try await response.write(answer(message))
        }
    }

    func answer(_ request: Grpc_Reflection_V1_ServerReflectionRequest) -> Grpc_Reflection_V1_ServerReflectionResponse {
        var response = Grpc_Reflection_V1_ServerReflectionResponse()
        response.validHost = request.host
        response.originalRequest = request
        switch request.messageRequest {
        case .listServices:
            response.listServicesResponse = .with {
                $0.service = serviceNames.map { name in .with { $0.name = name } }
            }
        case .fileByFilename(let name):
            response.messageResponse = files(index.serializedFileWithDependencies(name), missing: "file \(name)")
        case .fileContainingSymbol(let symbol):
            let files = index.fileName(containingSymbol: symbol).flatMap(index.serializedFileWithDependencies)
            response.messageResponse = self.files(files, missing: "symbol \(symbol)")
        case .fileContainingExtension(let request):
            let files = index.fileName(extending: request.containingType, number: request.extensionNumber)
                .flatMap(index.serializedFileWithDependencies)
            response.messageResponse = self.files(
                files, missing: "extension \(request.extensionNumber) of \(request.containingType)")
        case .allExtensionNumbersOfType(let type):
            if let numbers = index.extensionNumbers(of: type) {
                response.allExtensionNumbersResponse = .with {
                    $0.baseTypeName = type
                    $0.extensionNumber = numbers
                }
            } else {
                response.messageResponse = notFound("type \(type)")
            }
        case nil:
            response.errorResponse = .with {
                $0.errorCode = Int32(RPCError.Code.invalidArgument.rawValue)
                $0.errorMessage = "the request names no question"
            }
        }
        return response
    }

    private func files(_ files: [Data]?, missing: String)
        -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse
    {
        guard let files else { return notFound(missing) }
        return .fileDescriptorResponse(.with { $0.fileDescriptorProto = files })
    }

    private func notFound(_ what: String) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
        .errorResponse(.with {
            $0.errorCode = Int32(RPCError.Code.notFound.rawValue)
            $0.errorMessage = "\(what) not found"
        })
    }
}
