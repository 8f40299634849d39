import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Runs one or more Kangyi services in this process: migrates their schemas, opens the pool, starts a
/// gRPC server per service (each on its own port) plus the metrics endpoint and the database health
/// probe, and shuts all of it down gracefully on SIGTERM/SIGINT (servers first, the pool last).
public struct KangyiProcess: Sendable {
    public var services: [ServiceDefinition]
    /// The port each service listens on, by name.
    public var ports: [String: Int]
    /// Where the other services of the deployment answer, by name (`host:port`), for service-to-service RPCs.
    public var peers: [String: String]
    public var databaseURL: DatabaseURL
    public var settings: Settings
    public var logger: Logger
    /// Process-wide work beside the services (`kangyi dev`'s database watchdog); started first, stopped last.
    public var background: [any Service]

    public init(
        services: [ServiceDefinition], ports: [String: Int], peers: [String: String], databaseURL: DatabaseURL,
        settings: Settings, logger: Logger, background: [any Service] = []
    ) {
        self.background = background
        self.services = services
        self.ports = ports
        self.peers = peers
        self.databaseURL = databaseURL
        self.settings = settings
        self.logger = logger
    }

    /// Where everything listens, once it does.
    public struct Addresses: Sendable, Codable {
        public struct Server: Sendable, Codable {
            public var name: String
            public var grpc: String
            /// The HTTP address, for a service that also serves HTTP (the gateway).
            public var http: String?
        }
        public var services: [Server]
        public var metrics: String
    }

    /// Every migration of the given services, the shared `common` schema first.
    public static func migrations(of services: [ServiceDefinition]) -> [Migration] {
        CommonSchema.migrations + services.flatMap(\.migrations)
    }

    /// Runs until a shutdown signal; `onReady` is called once every server listens.
    public func run(onReady: @escaping @Sendable (Addresses) async throws -> Void = { _ in }) async throws {
        guard settings.identityKey != nil else {
            throw SettingsError(
                variable: "KANGYI_IDENTITY_KEY",
                expected: "base64 of at least 32 random bytes, the same for every service of the deployment "
                    + "(openssl rand -base64 32); it signs the identities services pass each other", missing: true)
        }
        try await MigrationRunner(logger: logger).apply(Self.migrations(of: services), url: databaseURL)

        let pools = DatabasePools()
        let database = Database.makePool(
            url: databaseURL, poolSize: settings.databasePoolSize, registeringIn: pools, logger: logger)
        let metrics = RPCMetrics()
        let metricsServer = MetricsHTTPServer(
            metrics: metrics, host: settings.host, port: settings.metricsPort,
            idleTimeout: settings.server.silentConnectionLimit, logger: logger)
        let runtime = ServiceRuntime(
            database: database, settings: settings, logger: logger, peers: peers, metrics: metrics, databaseURL: databaseURL,
            pools: pools)

        var servers: [GRPCServerService] = []
        var background: [any Service] = []
        var http: [String: any ListeningService] = [:]
        var fronts: [String: any ListeningService] = [:]
        for definition in services {
            var own = runtime
            own.peers = peers.filter { definition.calls.contains($0.key) }
            let ownLoop = definition.servesFromOneEventLoop ? ServiceEventLoop() : nil
            if let ownLoop { own.eventLoop = ownLoop.executor }
            let assembled = try await definition.assemble(own)
            background += assembled.background
            if let listener = assembled.http {
                background.append(listener)
                http[definition.name] = listener
            }
            let port = ports[definition.name] ?? definition.defaultPort
            let tls = definition.facesOutside ? settings.tls : nil
            let front = tls == nil ? assembled.front : nil
            let server = GRPCServerService(
                name: definition.name, services: assembled.rpcServices, host: front == nil ? settings.host : "127.0.0.1",
                port: front == nil ? port : 0, limits: settings.server,
                metrics: metrics, logger: logger, identity: assembled.identity ?? RequestContextInterceptor(key: settings.identityKey),
                admission: assembled.admission, tls: tls, eventLoop: ownLoop)
            servers.append(server)
            if let front {
                fronts[definition.name] = front(
                    FrontPlacement(host: settings.host, port: port, limits: settings.server, inFlight: server.inFlight) {
                        try await server.listeningAddress()
                    })
            }
        }
        let probe = DatabaseHealthProbe(
            url: databaseURL, boards: servers.map(\.board), pools: pools, interval: settings.healthProbeInterval,
            logger: logger)

        // Started in this order, stopped in reverse: front doors drain first (they hand calls to their
        // servers), then the servers, and the pool closes last.
        let running = RunningMembers()
        let members: [any Service] = [ShutdownDeadline(grace: settings.shutdownGrace, running: running, logger: logger)]
            + (self.background + [database, probe, metricsServer] + background + servers + fronts.sorted { $0.key < $1.key }.map(\.value))
                .map { running.track($0) }
        var configuration = ServiceGroupConfiguration(
            services: members.map {
                .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger)
        // Past this, whatever still runs is cancelled: a stuck RPC must not keep a pod from stopping.
        // (Kubernetes' grace period must exceed it; its default is 30 s.)
        configuration.maximumGracefulShutdownDuration = settings.shutdownGrace
        let group = ServiceGroup(configuration: configuration)

        let started = servers
        let listeners = http
        let frontDoors = fronts
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                var listening: [Addresses.Server] = []
                for server in started {
                    let door: any ListeningService = frontDoors[server.name] ?? server
                    listening.append(
                        .init(
                            name: server.name, grpc: try await door.listeningAddress(),
                            http: try await listeners[server.name]?.listeningAddress()))
                }
                try await onReady(Addresses(services: listening, metrics: await metricsServer.listeningAddress()))
            }
            try await tasks.next()
            try await tasks.next()
        }
    }
}

/// The last guarantee that SIGTERM stops the process: once graceful shutdown begins, the service group
/// drains for `grace` and then cancels what still runs; if anything ignores that cancellation (a library
/// wait that cannot be cancelled), the process exits anyway a few seconds later, with a log line that
/// says so. Kubernetes would otherwise kill it mid-call at the end of its own grace period.
///
/// Armed by the signal itself, not by its own turn in the group's shutdown: the group stops its members
/// one at a time, newest first, and this one — stopped last — would never hear of a shutdown that a
/// hanging member holds up. Its log line names the members still running, so the one that hung is known.
struct ShutdownDeadline: Service {
    let grace: Duration
    let running: RunningMembers
    let logger: Logger

    func run() async {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let (grace, running, logger) = (self.grace, self.running, self.logger)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                Thread.detachNewThread {
                    Thread.sleep(forTimeInterval: grace.inSeconds + 5)
                    logger.critical(
                        "shutdown overran its drain budget; exiting",
                        metadata: ["grace_s": "\(grace.inSeconds)", "still_running": "\(running.names.joined(separator: ", "))"])
                    exit(1)
                }
                break
            }
        }
        // A member that returns early makes the group cancel everything: this one waits for its turn.
        try? await gracefulShutdown()
    }
}

/// The members of a process's service group that are running now, by name (a server or peer by its
/// service's name, anything else by its type).
final class RunningMembers: Sendable {
    private struct State {
        var names: [String] = []  // by the order members were tracked
        var running = Set<Int>()  // positions in `names`
    }
    private let state = Mutex(State())

    /// `service`, reporting here while it runs.
    func track(_ service: any Service) -> any Service {
        let name = Self.name(of: service)
        let position = state.withLock { state in
            state.names.append(name)
            return state.names.count - 1
        }
        return Member(service: service, name: name, position: position, running: self)
    }

    /// In the order they were tracked.
    var names: [String] { state.withLock { state in state.running.sorted().map { state.names[$0] } } }

    static func name(of service: any Service) -> String {
        switch service {
        case let server as GRPCServerService: "server \(server.name)"
        case let peer as PeerClient: "peer \(peer.name)"
        default: String(describing: type(of: service))
        }
    }

    /// Described by its name, as the service group's own log lines describe their members.
    private struct Member: Service, CustomStringConvertible {
        let service: any Service
        let name: String
        let position: Int
        let running: RunningMembers

        var description: String { name }

        // The group's graceful shutdown reaches `service` through task-locals, which this task carries.
        func run() async throws {
            running.state.withLock { _ = $0.running.insert(position) }
            defer { running.state.withLock { _ = $0.running.remove(position) } }
            try await service.run()
        }
    }
}
