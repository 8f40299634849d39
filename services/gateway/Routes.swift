import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// Which backend serves each service the gateway fronts. Fronting another service is a line here (and
/// its methods' scopes in ``Scopes``); the methods themselves come from the contracts.
public enum Routes {
    public static let backends: [String: String] = [
        "kangyi.intake.v1.IntakeService": "intake",
        "kangyi.verification.v1.VerificationService": "verification",
        "kangyi.checkpoint.v1.CheckpointService": "checkpoint",
        "kangyi.tracing.v1.TracingService": "tracing",
        "kangyi.pricewatch.v1.PriceWatchService": "pricewatch",
    ]

    /// One routed method as the contracts describe it.
    public struct Method: Sendable {
        public var descriptor: MethodDescriptor
        public var inputType: String
        public var outputType: String
        public var clientStreaming: Bool
        public var serverStreaming: Bool

        public var fullName: String { descriptor.fullyQualifiedMethod }
    }

    /// Every method of `service`, from the embedded descriptor set.
    public static func methods(of service: String, in index: DescriptorIndex = .embedded) -> [Method] {
        for file in index.files.values {
            for candidate in file.service where "\(file.package).\(candidate.name)" == service {
                return candidate.method.map {
                    Method(
                        descriptor: MethodDescriptor(fullyQualifiedService: service, method: $0.name),
                        inputType: String($0.inputType.drop(while: { $0 == "." })),
                        outputType: String($0.outputType.drop(while: { $0 == "." })),
                        clientStreaming: $0.clientStreaming, serverStreaming: $0.serverStreaming)
                }
            }
        }
        return []
    }
}
