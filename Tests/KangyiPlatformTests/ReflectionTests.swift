import KangyiAPI
@testable import KangyiPlatform
import SwiftProtobuf
import Testing

@Suite struct ReflectionTests {
    let reflection = ReflectionService(serviceNames: ["kangyi.intake.v1.IntakeService", "grpc.health.v1.Health"])

    func ask(_ configure: (inout Grpc_Reflection_V1_ServerReflectionRequest) -> Void)
        -> Grpc_Reflection_V1_ServerReflectionResponse
    {
        reflection.answer(.with(configure))
    }

    @Test func listsTheServicesItWasGiven() {
        let names = ask { $0.listServices = "" }.listServicesResponse.service.map(\.name)
        #expect(names == ["grpc.health.v1.Health", "kangyi.intake.v1.IntakeService"])
    }

    @Test func fileContainingASymbolComesWithItsImports() throws {
        for symbol in ["kangyi.intake.v1.IntakeService", "kangyi.intake.v1.IntakeService.ListCategories",
                       "kangyi.intake.v1.ListCategoriesResponse", "kangyi.common.v1.HelpCategory"] {
            let files = try ask { $0.fileContainingSymbol = symbol }.fileDescriptorResponse.fileDescriptorProto
                .map { try Google_Protobuf_FileDescriptorProto(serializedBytes: $0) }
            #expect(!files.isEmpty, "no file for \(symbol)")
        }
        let files = try ask { $0.fileContainingSymbol = "kangyi.intake.v1.IntakeService" }
            .fileDescriptorResponse.fileDescriptorProto.map { try Google_Protobuf_FileDescriptorProto(serializedBytes: $0) }
        #expect(files.first?.name == "kangyi/intake/v1/intake.proto")
        #expect(files.map(\.name).contains("kangyi/common/v1/common.proto"))
    }

    @Test func fileByName() throws {
        let files = ask { $0.fileByFilename = "grpc/health/v1/health.proto" }.fileDescriptorResponse.fileDescriptorProto
        #expect(try Google_Protobuf_FileDescriptorProto(serializedBytes: files[0]).package == "grpc.health.v1")
    }

    @Test func unknownNamesAnswerNotFoundInsideTheStream() {
        let response = ask { $0.fileContainingSymbol = "kangyi.nope.v1.Nothing" }
        #expect(response.errorResponse.errorCode == 5)  // NOT_FOUND
        #expect(ask { $0.fileByFilename = "nope.proto" }.errorResponse.errorCode == 5)
    }
}
