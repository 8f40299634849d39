import ArgumentParser
import KangyiPlatform
import Logging
import PostgresNIO

/// What the administrative subcommands (`kangyi token`, `kangyi reference`) share: the database at
/// `KANGYI_DATABASE_URL`, with the migrations they rely on applied first.
func withAdministrationDatabase<T: Sendable>(
    label: String, migrations: [Migration], _ body: @Sendable (DatabasePool, Logger) async throws -> T
) async throws -> T {
    let startup = try Startup(label: label)
    guard let url = startup.settings.databaseURL else { throw ValidationError("KANGYI_DATABASE_URL must be set") }
    return try await withMigratedDatabase(url: url, migrations: migrations, logger: startup.logger, body)
}

func withMigratedDatabase<T: Sendable>(
    url: DatabaseURL, migrations: [Migration], logger: Logger, _ body: @Sendable (DatabasePool, Logger) async throws -> T
) async throws -> T {
    _ = try await MigrationRunner(logger: logger).apply(migrations, url: url)
    return try await Database.withPool(url: url, logger: logger) { client in try await body(client, logger) }
}
