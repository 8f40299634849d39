import ArgumentParser
import Foundation
import KangyiGateway
import KangyiPlatform
import Logging
import ServiceLifecycle

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
        if settings.identityKey == nil {
            settings.identityKey = try identityKey(in: dataDirectory.appendingPathComponent("identity.key"))
        }
        if settings.personalData == nil {
            settings.personalData = try personalDataKeys(in: dataDirectory)
        }

        var embedded: EmbeddedPostgres?
        var watchdog: [any Service] = []
        let url: DatabaseURL
        if let configured = settings.databaseURL {
            url = configured
        } else {
            let cluster = EmbeddedPostgres(
                dataDirectory: dataDirectory.appendingPathComponent("pg").path, logger: startup.logger)
            url = try cluster.start()
            embedded = cluster
            watchdog = [EmbeddedPostgresWatchdog(cluster: cluster, port: url.port, logger: startup.logger)]
        }
        defer { embedded?.stop() }

        var ports: [String: Int] = [:]
        for service in Catalog.all {
            ports[service.name] = ephemeralPorts ? try FreePort.find() : service.defaultPort
        }
        if ephemeralPorts {
            settings.metricsPort = 0
            settings.httpPort = try FreePort.find()
        }
        let peers = ports.mapValues { "\(settings.host):\($0)" }
        startup = Startup(settings: settings, logger: startup.logger)

        let devFile = dataDirectory.appendingPathComponent("dev.json")
        let process = KangyiProcess(
            services: Catalog.all, ports: ports, peers: peers, databaseURL: url, settings: settings,
            logger: startup.logger, background: watchdog)
        let logger = startup.logger
        try await process.run { addresses in
            // A development token with every scope, for calls through the gateway.
            let (_, token) = try await withTokens(url: url, logger: logger) { tokens in
                try await tokens.create(
                    caller: "developer", department: "", scopes: Scopes.kinds["development"] ?? [], ratePerSecond: 1000,
                    burst: 2000, expiresAt: Date().addingTimeInterval(7 * 86_400))
            }
            let info = DevInfo(
                services: addresses.services, metrics: addresses.metrics, databaseURL: url.string,
                pid: ProcessInfo.processInfo.processIdentifier, token: token)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try encoder.encode(info).write(to: devFile, options: .atomic)
            FileHandle.standardOutput.write(Data((info.banner(devFile: devFile.path) + "\n").utf8))
        }
        try? FileManager.default.removeItem(at: devFile)
    }
}

/// Restarts the embedded cluster on its own port whenever it is found dead (killed, crashed): the pool
/// and the health probe reconnect by themselves, so `kangyi dev` outlives its database.
struct EmbeddedPostgresWatchdog: Service {
    let cluster: EmbeddedPostgres
    let port: Int
    let logger: Logger

    func run() async {
        await repeatUntilShutdown(every: .seconds(1), logger: logger, failure: "could not restart embedded PostgreSQL") {
            guard !cluster.isRunning else { return }
            logger.warning("embedded PostgreSQL is down; restarting it on its port", metadata: ["port": "\(port)"])
            _ = try cluster.start(port: port)
        }
    }
}

/// The development identity key (`KANGYI_IDENTITY_KEY` when unset): kept in `.data/identity.key`
/// (readable by its owner only), made on first use, so tools can sign identities to call a backend directly.
func identityKey(in file: URL) throws -> IdentityKey {
    if let text = try? String(contentsOf: file, encoding: .utf8), let key = IdentityKey(base64: text) { return key }
    let key = IdentityKey.random()
    try writePrivately(key.base64, to: file)
    return key
}

/// The development personal-data keys (`KANGYI_PII_KEY`, `KANGYI_PII_INDEX_KEY` when unset): kept in
/// `.data/pii.key` and `.data/pii-index.key` (readable by their owner only), made on first use.
func personalDataKeys(in directory: URL) throws -> PersonalDataKeys {
    let sealingFile = directory.appendingPathComponent("pii.key")
    let indexFile = directory.appendingPathComponent("pii-index.key")
    if let sealing = (try? String(contentsOf: sealingFile, encoding: .utf8)).flatMap(PersonalDataKeys.SealingKey.init(base64:)),
        let index = try? String(contentsOf: indexFile, encoding: .utf8),
        let keys = try? PersonalDataKeys(current: sealing, indexKeyBase64: index)
    {
        return keys
    }
    let keys = PersonalDataKeys.random()
    for (file, text) in [(sealingFile, keys.current.base64), (indexFile, keys.indexKeyBase64)] {
        try writePrivately(text, to: file)
    }
    return keys
}

/// A key file readable by its owner only. A key that could not be kept must not be used: what it signs or
/// seals would be unreadable at the next start, under a new key.
private func writePrivately(_ text: String, to file: URL) throws {
    guard FileManager.default.createFile(
        atPath: file.path, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: 0o600])
    else { throw PlatformError(description: "cannot write \(file.path)") }
}

/// The contents of `.data/dev.json`.
struct DevInfo: Codable {
    var services: [KangyiProcess.Addresses.Server]
    var metrics: String
    var databaseURL: String
    var pid: Int32
    /// A development token with every scope (valid for a week), for the gateway.
    var token: String

    enum CodingKeys: String, CodingKey {
        case services, metrics, pid, token
        case databaseURL = "database_url"
    }

    /// What a newcomer sees: every address, and one command to paste.
    func banner(devFile: String) -> String {
        var lines = ["", "Kangyi is running (\(devFile)):"]
        for server in services {
            var line = "  \(server.name.padding(toLength: 14, withPad: " ", startingAt: 0)) grpc://\(server.grpc)"
            if let http = server.http { line += "   http://\(http)" }
            lines.append(line)
        }
        lines.append("  metrics        http://\(metrics)/metrics")
        lines.append("  database       \(DatabaseURL(databaseURL)?.description ?? "")")
        lines.append("  dev token      \(token)")
        if let gateway = services.first(where: { $0.name == "gateway" }) {
            lines.append("")
            lines.append("Try it through the gateway (Python grpcio, installed by `make test`; or curl):")
            lines.append(
                "  .venv/bin/python scripts/call.py \(gateway.grpc) kangyi.intake.v1.IntakeService/ListCategories '{}' "
                    + "'authorization:Bearer \(token)'")
            if let http = gateway.http {
                lines.append(
                    "  curl -s -X POST http://\(http)/kangyi.intake.v1.IntakeService/ListCategories "
                        + "-H 'authorization: Bearer \(token)' -d '{}'")
            }
        }
        lines.append("Stop with Ctrl-C.")
        return lines.joined(separator: "\n")
    }
}
