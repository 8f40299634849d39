import ArgumentParser
import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// `kangyi reference load|show`: the city a deployment serves (districts, departments, help categories,
/// the city's codes and plate prefix). Services pick a load up within ``ReferenceDataCache/lifetime``.
struct ReferenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reference", abstract: "The city's reference data (KANGYI_DATABASE_URL required).",
        subcommands: [Load.self, Show.self])

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the reference data with a file's (JSON; reference/zhengzhou.json is a complete example).",
            discussion: """
                The whole file is checked first and every problem reported. Then districts, departments, categories \
                and the city are replaced in one transaction. A code the file drops that stored rows still name is \
                refused with the list of them, and nothing changes. Running services use the new data within \
                \(ReferenceDataCache.lifetime.components.seconds) s.
                """)

        @Argument(help: "The file (- for stdin).") var file: String
        @Flag(help: "Check the file and report, without touching the database.") var check = false

        func run() async throws {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            do {
                let reference = try ReferenceDataFile.decode(data)
                let problems = ReferenceDataFile.check(reference)
                guard problems.isEmpty else { throw ReferenceDataFile.Problems(problems) }
                if check {
                    print("\(file): fine (\(reference.districts.count) districts, \(reference.departments.count) departments, \(reference.categories.count) categories)")
                    return
                }
                try await withReferenceDatabase { client, logger in
                    try await ReferenceDataFile.replace(with: reference, on: client, logger: logger)
                }
                print("loaded \(file): \(reference.districts.count) districts, \(reference.departments.count) departments, \(reference.categories.count) categories")
            } catch let problems as ReferenceDataFile.Problems {
                FileHandle.standardError.write(Data("\(file) was not loaded:\n  \(problems.problems.joined(separator: "\n  "))\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the reference data loaded now, in the file format.")

        func run() async throws {
            let reference = try await withReferenceDatabase { client, logger in
                try await ReferenceData.load(from: client, logger: logger)
            }
            print(String(decoding: try ReferenceDataFile.encode(reference), as: UTF8.self))
        }
    }
}

/// Runs `body` on `KANGYI_DATABASE_URL`, the `common` schema migrated first.
private func withReferenceDatabase<T: Sendable>(_ body: @Sendable (DatabasePool, Logger) async throws -> T) async throws -> T {
    try await withAdministrationDatabase(label: "kangyi.reference", migrations: CommonSchema.migrations, body)
}
