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
    /// The services it calls: only these get an address in its runtime (`peerClient`), and a deployment
    /// lets it reach only these (deploy/k8s NetworkPolicies, checked against this list).
    public var calls: [String]
    /// Builds the RPC implementations and any background work, given the shared runtime.
    public var assemble: @Sendable (ServiceRuntime) async throws -> AssembledService
    /// Whether outside callers reach it directly (the gateway): its gRPC port then serves TLS when
    /// `KANGYI_TLS_CERT`/`KANGYI_TLS_KEY` are set. Every other service is reached inside the cluster only.
    public var facesOutside: Bool
    /// PostgreSQL connections it holds beyond the shared pool (``ServiceRuntime/dedicatedDatabase(poolSize:sessionSettings:)``),
    /// so a deployment's connection budget counts them.
    public var dedicatedConnections: Int
    /// Whether its whole server — sockets, HTTP/2, RPC handlers and what they await — runs on one event
    /// loop of its own (``ServiceEventLoop``, ``ServiceRuntime/eventLoop``): no thread hand-offs per call,
    /// for a service whose handlers are short steps between round trips. It then uses about one core.
    public var servesFromOneEventLoop: Bool

    public init(
        name: String, defaultPort: Int, migrations: [Migration], calls: [String] = [], facesOutside: Bool = false,
        dedicatedConnections: Int = 0, servesFromOneEventLoop: Bool = false,
        assemble: @escaping @Sendable (ServiceRuntime) async throws -> AssembledService
    ) {
        self.name = name
        self.defaultPort = defaultPort
        self.migrations = migrations
        self.calls = calls
        self.facesOutside = facesOutside
        self.dedicatedConnections = dedicatedConnections
        self.servesFromOneEventLoop = servesFromOneEventLoop
        self.assemble = assemble
    }
}

/// What a service's `assemble` receives: the database pool, settings, a logger, and where its peers are.
public struct ServiceRuntime: Sendable {
    public var database: DatabasePool
    public var settings: Settings
    public var logger: Logger
    /// gRPC addresses (`host:port`) of the other services in this deployment, by name.
    public var peers: [String: String]
    /// The process's metrics registry, for what a service counts outside its gRPC server (HTTP calls).
    public var metrics: RPCMetrics

    /// Where the database is, for a pool of the service's own (``dedicatedDatabase(poolSize:sessionSettings:)``).
    public var databaseURL: DatabaseURL?
    /// Where the service's own work that waits on round trips runs best (a group committer's lanes, with
    /// their connections, ``dedicatedDatabase(poolSize:sessionSettings:)``) and where its peer clients'
    /// connections live (``peerClient(_:)``): its server's loop when it serves from one event loop, else a
    /// loop of NIO's shared group.
    public var eventLoop: EventLoopTaskExecutor
    /// The process's pools, which the database health probe tells when the database returns from an
    /// outage; ``dedicatedDatabase(poolSize:sessionSettings:)`` adds each pool it makes.
    public var pools: DatabasePools

    public init(
        database: DatabasePool, settings: Settings, logger: Logger, peers: [String: String],
        metrics: RPCMetrics = RPCMetrics(), databaseURL: DatabaseURL? = nil, eventLoop: EventLoopTaskExecutor = EventLoopTaskExecutor(),
        pools: DatabasePools = DatabasePools()
    ) {
        self.database = database
        self.settings = settings
        self.logger = logger
        self.peers = peers
        self.metrics = metrics
        self.databaseURL = databaseURL
        self.eventLoop = eventLoop
        self.pools = pools
    }

    /// A pool of the service's own whose connections start with `sessionSettings` — settings that must not
    /// reach the shared pool's other users. The service runs it: list it in `background` before what
    /// uses it, so that it closes after them. Its connections all live on ``eventLoop``, where the work
    /// that uses them runs.
    public func dedicatedDatabase(poolSize: Int, sessionSettings: [(String, String)]) throws -> DatabasePool {
        guard let databaseURL else { throw PlatformError(description: "no database URL for a dedicated pool") }
        return Database.makePool(
            url: databaseURL, poolSize: poolSize, sessionSettings: sessionSettings,
            eventLoopGroup: eventLoop.eventLoop, holdsConnections: true, registeringIn: pools, logger: logger)
    }
}

/// The parts of a running service: RPC implementations for its server and long-running work (group
/// committers, stream followers) that runs beside it and shuts down with it.
public struct AssembledService: Sendable {
    public var rpcServices: [any RegistrableRPCService]
    public var background: [any Service]
    /// Replaces the default identity interceptor (see ``GRPCServerService``); the gateway's.
    public var identity: (any ServerInterceptor)?
    /// Innermost interceptors (see ``GRPCServerService``); the gateway's admission checks.
    public var admission: [any ServerInterceptor]
    /// A second, HTTP listener the service runs (the gateway's JSON door), reported in the addresses.
    public var http: (any ListeningService)?
    /// A door that takes the service's gRPC port in front of its server (the gateway's frame relay): the
    /// server then listens on loopback only and the door hands it what it does not serve itself. Not
    /// used when the port serves TLS (the server itself does that).
    public var front: (@Sendable (FrontPlacement) -> any ListeningService)?

    public init(
        rpcServices: [any RegistrableRPCService], background: [any Service] = [],
        identity: (any ServerInterceptor)? = nil, admission: [any ServerInterceptor] = [], http: (any ListeningService)? = nil,
        front: (@Sendable (FrontPlacement) -> any ListeningService)? = nil
    ) {
        self.rpcServices = rpcServices
        self.background = background
        self.identity = identity
        self.admission = admission
        self.http = http
        self.front = front
    }
}

/// Where a service's front door (``AssembledService/front``) listens, and where the server behind it does.
public struct FrontPlacement: Sendable {
    public var host: String
    public var port: Int
    public var limits: Settings.ServerLimits
    /// The server's calls in flight: the door's calls count in it too, so the limit is one per port.
    public var inFlight: InFlightLimit
    /// The service's own gRPC server: `host:port` on loopback, once it listens.
    public var server: @Sendable () async throws -> String

    public init(
        host: String, port: Int, limits: Settings.ServerLimits, inFlight: InFlightLimit,
        server: @escaping @Sendable () async throws -> String
    ) {
        self.host = host
        self.port = port
        self.limits = limits
        self.inFlight = inFlight
        self.server = server
    }
}

/// A lifecycle service that listens on a port and can say where, once it does.
public protocol ListeningService: Service {
    func listeningAddress() async throws -> String
}
