import ArgumentParser
import Foundation
import KangyiPlatform
import KangyiPriceWatch

/// `kangyi pricewatch import FILE.csv`: historical price observations (see services/pricewatch/README.md).
struct PriceWatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pricewatch", abstract: "The price-watch service's data (KANGYI_DATABASE_URL required).",
        subcommands: [Import.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load historical observations from a CSV file, idempotently (rules are not run on history).",
            discussion: "Columns: submitter,observation_id,commodity,outlet,price_fen,quantity,purchase_cost_fen,observed_at,source")

        @Argument(help: "The CSV file (- for stdin).") var file: String

        func run() async throws {
            let startup = try Startup(label: "kangyi.pricewatch")
            guard let url = startup.settings.databaseURL else { throw ValidationError("KANGYI_DATABASE_URL must be set") }
            let source = file == "-" ? FileHandle.standardInput : try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
            let summary = try await withMigratedDatabase(
                url: url, migrations: KangyiProcess.migrations(of: [PriceWatch.definition]), logger: startup.logger
            ) { client, logger in
                try await PriceImport(client: client, logger: logger).run(lines: FileLines(source)) { progress in
                    FileHandle.standardError.write(Data("\r\(progress)".prefix(120).utf8))
                }
            }
            FileHandle.standardError.write(Data("\n".utf8))
            print("imported \(file): \(summary)")
            if summary.stored + summary.duplicates == 0 && summary.refused > 0 { throw ExitCode(1) }
        }
    }
}
