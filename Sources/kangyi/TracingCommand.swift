import ArgumentParser
import Foundation
import KangyiPlatform
import KangyiTracing

/// `kangyi tracing rotate-key`: re-seals the tracing service's personal data under `KANGYI_PII_KEY`.
struct TracingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracing", abstract: "The tracing service's personal-data keys (KANGYI_DATABASE_URL required).",
        subcommands: [RotateKey.self])

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key", abstract: "Re-seal every row still under a retired key with KANGYI_PII_KEY.",
            discussion: """
                Rotation: give every tracing replica the new key as KANGYI_PII_KEY and the old one in \
                KANGYI_PII_RETIRED_KEYS (rows name their key, so both read), run this (small batches, one transaction \
                each, while the service serves), and drop the old key once it reports no rows under it.
                """)

        @Flag(help: "Only report how many rows each key seals.") var status = false

        func run() async throws {
            let startup = try Startup(label: "kangyi.tracing")
            guard let keys = startup.settings.personalData else {
                throw ValidationError("KANGYI_PII_KEY and KANGYI_PII_INDEX_KEY must be set")
            }
            guard let url = startup.settings.databaseURL else { throw ValidationError("KANGYI_DATABASE_URL must be set") }
            try await withMigratedDatabase(
                url: url, migrations: KangyiProcess.migrations(of: [Tracing.definition]), logger: startup.logger
            ) { client, logger in
                let rotation = KeyRotation(client: client, keys: keys, logger: logger)
                if !status {
                    let done = try await rotation.run()
                    print("re-sealed \(done.persons) persons and \(done.attempts) call attempts under key \(keys.current.id)")
                }
                for (key, rows) in try await rotation.rowsByKey().sorted(by: { $0.key < $1.key }) {
                    print("key \(key): \(rows) rows\(key == keys.current.id ? " (current)" : "")")
                }
            }
        }
    }
}
