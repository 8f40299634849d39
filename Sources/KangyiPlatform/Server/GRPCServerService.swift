import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiAPI
import Logging
import NIOPosix
import ServiceLifecycle

/// One gRPC server — a Kangyi service's RPCs plus health and reflection, behind the platform's
/// interceptors — on the HTTP/2 Posix transport with explicit limits. As a lifecycle service it stops
/// accepting RPCs on SIGTERM/SIGINT, lets those in flight finish, and ends health watches first (they
/// would otherwise hold the server open).
public struct GRPCServerService: ListeningService {
    public let name: String
    public let board: HealthBoard
    /// Its calls in flight (``LoadSheddingInterceptor``); a front door in front of it counts in the same.
    public let inFlight: InFlightLimit
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    /// The loop it serves from, if it has one of its own.
    let eventLoop: ServiceEventLoop?
    let logger: Logger

    /// - Parameters:
    ///   - name: the Kangyi service's name (`intake`, ...), used in logs and `dev.json`.
    ///   - services: the service's own RPC implementations; health and reflection are added here.
    ///   - identity: the outermost interceptor, which establishes ``CallerIdentity/current``: a backend's
    ///     ``RequestContextInterceptor`` believes identities signed under the deployment's key; the
    ///     default believes none. The gateway resolves bearer tokens instead.
    ///   - admission: innermost interceptors, after logging and error mapping (the gateway's checks), so
    ///     the calls they refuse are logged and counted too.
    ///   - eventLoop: the one loop its connections, streams and handlers all run on; none, NIO's shared
    ///     group and Swift's global pool.
    public init(
        name: String, services: [any RegistrableRPCService], host: String, port: Int,
        limits: Settings.ServerLimits, metrics: RPCMetrics, logger: Logger,
        identity: any ServerInterceptor = RequestContextInterceptor(key: nil), admission: [any ServerInterceptor] = [],
        tls: TLSFiles? = nil, eventLoop: ServiceEventLoop? = nil
    ) {
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        for service in services { service.registerMethods(with: &router) }
        let ownNames = Set(router.methods.map(\.service.fullyQualifiedService))
        let board = HealthBoard(services: ownNames.sorted())
        HealthService(board: board).registerMethods(with: &router)
        let allNames = ownNames.union([
            Grpc_Health_V1_Health.descriptor.fullyQualifiedService,
            Grpc_Reflection_V1_ServerReflection.descriptor.fullyQualifiedService,
            Grpc_Reflection_V1alpha_ServerReflection.descriptor.fullyQualifiedService,
        ])
        let inFlight = InFlightLimit(limit: limits.maxInFlight)
        let reflection = ReflectionService(serviceNames: Array(allNames))
        reflection.registerMethods(with: &router)
        ReflectionServiceV1Alpha(reflection).registerMethods(with: &router)
        router.registerInterceptors(
            pipeline: ([identity] + Self.observers(metrics: metrics, logger: logger)
                + [IdentityCheckInterceptor(), LoadSheddingInterceptor(inFlight: inFlight), RequestCheckInterceptor(maxBytes: limits.maxRequestBytes)]
                + admission).map { .apply($0, to: .all) })

        self.name = name
        self.board = board
        self.inFlight = inFlight
        self.eventLoop = eventLoop
        self.logger = logger
        self.server = GRPCServer(
            transport: Self.transport(
                host: host, port: port, limits: limits, tls: tls, group: eventLoop?.group ?? .singletonMultiThreadedEventLoopGroup,
                shedding: ShedsAtCapacity(inFlight: inFlight, methods: router.methods, metrics: metrics, logger: logger)),
            router: router)
    }

    /// The same HTTP/2 transport and limits with nothing of the platform around the services: no
    /// interceptors, health or reflection. `make bench` runs its no-op on this beside the platform's, so
    /// what the interceptors cost is a measured figure.
    public static func bare(
        services: [any RegistrableRPCService], host: String, port: Int, limits: Settings.ServerLimits
    ) -> GRPCServer<HTTP2ServerTransport.Posix> {
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        for service in services { service.registerMethods(with: &router) }
        return GRPCServer(
            transport: transport(host: host, port: port, limits: limits, tls: nil, movesTimeouts: false), router: router)
    }

    /// The HTTP/2 transport every Kangyi server listens on: explicit limits, TLS when given, and the
    /// ``RequestHeaderGuard`` first in every stream (refusing calls beyond the in-flight limit when given
    /// the server's ``ShedsAtCapacity``).
    static func transport(
        host: String, port: Int, limits: Settings.ServerLimits, tls: TLSFiles?,
        group: MultiThreadedEventLoopGroup = .singletonMultiThreadedEventLoopGroup, movesTimeouts: Bool = true,
        shedding: ShedsAtCapacity? = nil
    ) -> HTTP2ServerTransport.Posix {
        HTTP2ServerTransport.Posix(
            address: .ipv4(host: host, port: port),
            transportSecurity: tls.map {
                .tls(
                    certificateChain: [.file(path: $0.certificatePath, format: .pem)],
                    privateKey: .file(path: $0.privateKeyPath, format: .pem))
            } ?? .plaintext,
            config: transportConfig(limits, movesTimeouts: movesTimeouts, shedding: shedding), eventLoopGroup: group)
    }

    /// What sits inside the identity interceptor: the access log and metrics, then error mapping.
    static func observers(metrics: RPCMetrics, logger: Logger) -> [any ServerInterceptor] {
        [CallObserverInterceptor(logger: logger, metrics: metrics), ErrorMappingInterceptor(logger: logger)]
    }

    static func transportConfig(
        _ limits: Settings.ServerLimits, movesTimeouts: Bool = true, shedding: ShedsAtCapacity? = nil
    ) -> HTTP2ServerTransport.Posix.Config {
        .defaults { config in
            config.rpc.maxRequestPayloadSize = RequestCheckInterceptor.transportCeiling(for: limits.maxRequestBytes)
            config.http2.maxConcurrentStreams = limits.maxConcurrentStreams
            config.connection.keepalive = .init(
                time: limits.keepaliveInterval, timeout: limits.keepaliveTimeout,
                clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(10), allowWithoutCalls: true))
            config.connection.maxAge = limits.connectionMaxAge
            config.connection.maxGraceTime = limits.connectionMaxGrace
            config.connection.flushCoalescing = FlushWindow.server
            config.channelDebuggingCallbacks.onAcceptTCPConnection = { connection in
                ClosesDeadConnections.insert(into: connection, limits: limits)
            }
            config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(
                        RequestHeaderGuard(movesTimeouts: movesTimeouts, shedding: shedding), position: .first)
                }
            }
        }
    }

    /// `host:port` once the server is listening (useful when it was asked for port 0).
    public func listeningAddress() async throws -> String {
        guard let address = try await server.listeningAddress, let ipv4 = address.ipv4 else {
            throw PlatformError(description: "server \(name) is not listening")
        }
        return "\(ipv4.host):\(ipv4.port)"
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            // The server's tasks — a connection's, a stream's, a handler's — are its children, so they
            // inherit the preference.
            do {
                try await withTaskExecutorPreference(eventLoop?.executor) { try await server.serve() }
            } catch {
                // Said here because grpc-swift tells whoever waits for the address only that the server
                // stopped, not why (a port in use, say). A server cancelled (the drain is over, or another
                // member failed) throws too, wrapping the cancellation: that is no fault of its own.
                if !Task.isCancelled {
                    logger.error("server could not serve", metadata: ["server": "\(name)", "error": "\(error)"])
                }
                throw error
            }
        } onGracefulShutdown: { [board, server] in
            board.shutDown()
            server.beginGracefulShutdown()
        }
    }
}
