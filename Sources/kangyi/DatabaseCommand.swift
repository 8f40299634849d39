import ArgumentParser
import KangyiPlatform

/// `kangyi db start|stop`: the embedded PostgreSQL cluster on its own, for `make test` and scripts.
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Start or stop an embedded PostgreSQL cluster in a folder.",
        subcommands: [Start.self, Stop.self])

    struct Options: ParsableArguments {
        @Option(help: "The cluster's folder.")
        var data = ".data/pg"
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start (creating if needed) and print its URL.")
        @OptionGroup var options: Options
        @Flag(help: "fsync off: for throwaway test clusters only.")
        var throwaway = false
        @Option(help: "The port to listen on. Default: the port this cluster last used (if free), else a free one.")
        var port: Int?

        func run() async throws {
            let startup = try Startup(label: "kangyi.db")  // logs go to stderr; stdout is the URL alone
            let cluster = EmbeddedPostgres(dataDirectory: options.data, durable: !throwaway, logger: startup.logger)
            print(try cluster.start(port: port).string)
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop it if it runs.")
        @OptionGroup var options: Options

        func run() async throws {
            EmbeddedPostgres(dataDirectory: options.data, logger: try Startup(label: "kangyi.db").logger).stop()
        }
    }
}
