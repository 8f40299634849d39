import ArgumentParser
import Foundation
import KangyiPlatform
import Logging

@main
struct Kangyi: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kangyi",
        abstract: "The back end of a city's epidemic emergency platform.",
        discussion: "Settings come from KANGYI_* environment variables; see README.md.",
        subcommands: [Serve.self, Dev.self, Migrate.self, CatalogCommand.self, TokenCommand.self, ReferenceCommand.self, TracingCommand.self, PriceWatchCommand.self, DatabaseCommand.self, Bench.self])
}

/// What every subcommand does first: read the settings (a bad value stops here, naming the variable)
/// and set up JSON logging at the configured level.
struct Startup {
    let settings: Settings
    let logger: Logger

    init(label: String) throws {
        let settings: Settings
        do {
            settings = try Settings(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError("configuration: \(error)")
        }
        let level = settings.logLevel
        LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: level) }
        self.settings = settings
        self.logger = Logger(label: label)
    }

    init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }
}
