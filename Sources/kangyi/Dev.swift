import ArgumentParser
import Foundation
import KangyiPlatform

/// `kangyi dev`: every service in one process, each on its own port, over an embedded PostgreSQL cluster
/// in `.data/pg` when `KANGYI_DATABASE_URL` is unset. Writes `.data/dev.json` for tools and tests.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every service in one process for development (what `make run` starts).")

    @Flag(help: "Listen on free ports instead of each service's default port (tests use this).")
    var ephemeralPorts = false

    func run() async throws {
        var startup = try Startup(label: "kangyi.dev")
        var settings = startup.settings
        let dataDirectory = URL(fileURLWithPath: settings.dataDirectory).standardizedFileURL
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)

        var embedded: EmbeddedPostgres?
        let url: DatabaseURL
        if let configured = settings.databaseURL {
            url = configured
        } else {
            let cluster = EmbeddedPostgres(
                dataDirectory: dataDirectory.appendingPathComponent("pg").path, logger: startup.logger)
            url = try cluster.start()
            embedded = cluster
        }
        defer { embedded?.stop() }

        var ports: [String: Int] = [:]
        for service in Catalog.all {
            ports[service.name] = ephemeralPorts ? try FreePort.find() : service.defaultPort
        }
        if ephemeralPorts { settings.metricsPort = 0 }
        let peers = ports.mapValues { "\(settings.host):\($0)" }
        startup = Startup(settings: settings, logger: startup.logger)

        let devFile = dataDirectory.appendingPathComponent("dev.json")
        let process = KangyiProcess(
            services: Catalog.all, ports: ports, peers: peers, databaseURL: url, settings: settings,
            logger: startup.logger)
        try await process.run { addresses in
            let info = DevInfo(
                services: addresses.services, metrics: addresses.metrics, databaseURL: url.string,
                pid: ProcessInfo.processInfo.processIdentifier)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try encoder.encode(info).write(to: devFile, options: .atomic)
            FileHandle.standardOutput.write(Data((info.banner(devFile: devFile.path) + "\n").utf8))
        }
        try? FileManager.default.removeItem(at: devFile)
    }
}

/// The contents of `.data/dev.json`.
struct DevInfo: Codable {
    var services: [KangyiProcess.Addresses.Server]
    var metrics: String
    var databaseURL: String
    var pid: Int32

    enum CodingKeys: String, CodingKey {
        case services, metrics, pid
        case databaseURL = "database_url"
    }

    /// What a newcomer sees: every address, and one command to paste.
    func banner(devFile: String) -> String {
        var lines = ["", "Kangyi is running (\(devFile)):"]
        for server in services { lines.append("  \(server.name.padding(toLength: 14, withPad: " ", startingAt: 0)) grpc://\(server.grpc)") }
        lines.append("  metrics        http://\(metrics)/metrics")
        lines.append("  database       \(DatabaseURL(databaseURL)?.description ?? "")")
        if let first = services.first {
            lines.append("")
            lines.append("Try it (Python grpcio, installed by `make test`):")
            lines.append("  .venv/bin/python scripts/call.py \(first.grpc) kangyi.intake.v1.IntakeService/ListCategories '{}'")
        }
        lines.append("Stop with Ctrl-C.")
        return lines.joined(separator: "\n")
    }
}
