import ArgumentParser
import Foundation
import KangyiPlatform

/// `kangyi serve <service>`: one service on its own port, as each Kubernetes Deployment runs it.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one service (migrating its schema first).")

    @Argument(help: "The service to run: \(Catalog.names).")
    var service: String

    func run() async throws {
        guard let definition = Catalog.named(service) else {
            throw ValidationError("unknown service \"\(service)\"; known: \(Catalog.names)")
        }
        let startup = try Startup(label: "kangyi.\(service)")
        guard let url = startup.settings.databaseURL else {
            throw ValidationError("KANGYI_DATABASE_URL must be set for `kangyi serve` (`kangyi dev` embeds one)")
        }
        let process = KangyiProcess(
            services: [definition],
            ports: [service: startup.settings.grpcPort ?? definition.defaultPort],
            peers: Catalog.peerAddresses(environment: ProcessInfo.processInfo.environment),
            databaseURL: url, settings: startup.settings, logger: startup.logger)
        try await process.run { addresses in
            for server in addresses.services {
                startup.logger.notice("serving", metadata: ["service": "\(server.name)", "grpc": "\(server.grpc)", "metrics": "\(addresses.metrics)"])
            }
        }
    }
}
