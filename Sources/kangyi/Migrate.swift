import ArgumentParser
import KangyiPlatform

/// `kangyi migrate [<service>]`: applies pending migrations (the `common` schema's first), settles the
/// services' database roles when run as an owner (``DatabaseRoles``), and exits. Servers connected as a
/// superuser also migrate at start-up; this is the separate step a deployment runs (the Kubernetes Job).
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending schema migrations, settle the services' database roles, and exit.")

    @Argument(help: "Only this service's schema (and common); all when omitted.")
    var service: String?

    func run() async throws {
        let services: [ServiceDefinition]
        if let service {
            guard let definition = Catalog.named(service) else {
                throw ValidationError("unknown service \"\(service)\"; known: \(Catalog.names)")
            }
            services = [definition]
        } else {
            services = Catalog.all
        }
        let startup = try Startup(label: "kangyi.migrate")
        guard let url = startup.settings.databaseURL else {
            throw ValidationError("KANGYI_DATABASE_URL must be set")
        }
        let applied = try await MigrationRunner(logger: startup.logger)
            .apply(KangyiProcess.migrations(of: services), url: url)
        print(applied.isEmpty ? "up to date" : applied.map { "applied \($0.schema) v\($0.version) \($0.name)" }.joined(separator: "\n"))
    }
}
