import ArgumentParser
import Foundation
import KangyiPlatform

/// `kangyi catalog`: what a deployment must provide for each service — its ports, its database role, the
/// services it calls — as JSON. `Tests/Deploy` checks the Kubernetes manifests against it.
struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog", abstract: "Print every service's ports, database role and peers as JSON.")

    struct Entry: Encodable {
        var name: String
        var grpcPort: Int
        /// The gateway's JSON door.
        var httpPort: Int?
        var metricsPort: Int
        var databaseRole: String
        var calls: [String]
        var facesOutside: Bool
        /// PostgreSQL connections beyond `KANGYI_DB_POOL_SIZE` (intake's group commit).
        var dedicatedConnections: Int
    }

    func run() throws {
        let defaults = Settings()
        let entries = Catalog.all.map { service in
            Entry(
                name: service.name, grpcPort: service.defaultPort, httpPort: service.facesOutside ? defaults.httpPort : nil,
                metricsPort: defaults.metricsPort, databaseRole: DatabaseRoles.role(of: service.name), calls: service.calls,
                facesOutside: service.facesOutside, dedicatedConnections: service.dedicatedConnections)
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(entries), as: UTF8.self))
    }
}
