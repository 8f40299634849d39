import KangyiCheckpoint
import KangyiGateway
import KangyiIntake
import KangyiPlatform
import KangyiPriceWatch
import KangyiTracing
import KangyiVerification

/// Every Kangyi service this binary can run, in start-up order. Adding a service is adding its
/// definition here (and its library target in Package.swift).
enum Catalog {
    static let all: [ServiceDefinition] = [
        Intake.definition, Verification.definition, Checkpoint.definition, PriceWatch.definition,
        Tracing.definition,
        Gateway.definition,
    ]

    /// Run only by `kangyi serve`, for `make bench`: never part of a deployment.
    static let benchOnly: [ServiceDefinition] = [Noop.definition]

    static func named(_ name: String) -> ServiceDefinition? { (all + benchOnly).first { $0.name == name } }

    static var names: String { all.map(\.name).joined(separator: ", ") }

    /// Where each service answers when it runs in its own process: `KANGYI_<NAME>_ADDRESS`, or the local
    /// default port (Kubernetes sets the variable to the service's DNS name).
    static func peerAddresses(environment: [String: String]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: all.map { service in
            (service.name, environment["KANGYI_\(service.name.uppercased())_ADDRESS"] ?? "127.0.0.1:\(service.defaultPort)")
        })
    }
}
