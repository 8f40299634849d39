import GRPCCore
import Logging
import PostgresNIO
import ServiceLifecycle

/// What a Kangyi service (intake, verification, ...) tells the platform about itself. Each service library
/// exports one; the executable lists them in its catalog and the platform does the rest: migrations,
/// the server with health and reflection, background work, shutdown.
public struct ServiceDefinition: Sendable {
    /// `intake`, `verification`, ...: the name in `kangyi serve <name>` and the PostgreSQL schema it owns.
    public var name: String
    /// The gRPC port `kangyi serve` and `kangyi dev` use unless told otherwise.
    public var defaultPort: Int
    /// Its schema's migrations, oldest first.
    public var migrations: [Migration]
    /// Builds the RPC implementations and any background work, given the shared runtime.
    public var assemble: @Sendable (ServiceRuntime) async throws -> AssembledService

    public init(
        name: String, defaultPort: Int, migrations: [Migration],
        assemble: @escaping @Sendable (ServiceRuntime) async throws -> AssembledService
    ) {
        self.name = name
        self.defaultPort = defaultPort
        self.migrations = migrations
        self.assemble = assemble
    }
}

/// What a service's `assemble` receives: the database pool, settings, a logger, and where its peers are.
public struct ServiceRuntime: Sendable {
    public var database: PostgresClient
    public var settings: Settings
    public var logger: Logger
    /// gRPC addresses (`host:port`) of the other services in this deployment, by name.
    public var peers: [String: String]

    public init(database: PostgresClient, settings: Settings, logger: Logger, peers: [String: String]) {
        self.database = database
        self.settings = settings
        self.logger = logger
        self.peers = peers
    }
}

/// The parts of a running service: RPC implementations for its server and long-running work (group
/// committers, stream followers) that runs beside it and shuts down with it.
public struct AssembledService: Sendable {
    public var rpcServices: [any RegistrableRPCService]
    public var background: [any Service]

    public init(rpcServices: [any RegistrableRPCService], background: [any Service] = []) {
        self.rpcServices = rpcServices
        self.background = background
    }
}
