import Foundation
import GRPCCore
import KangyiPlatform
import Logging
import Metrics
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The gateway's gRPC port. A call the gateway would forward anyway — a routed method, a live bearer token
/// that holds the method's scope (looked up first when the token cache does not know it), within the
/// caller's rate and the server's in-flight limit, a backend connection up — has its HTTP/2 frames relayed
/// straight to the backend: the headers rewritten as the forwarder's would be (the identity signed from
/// the token, the bearer token and forged identity headers dropped), the messages untouched. Every other
/// call (no token or an unknown one, a refusal, health, reflection, a backend still connecting) goes
/// unchanged to the gateway's own gRPC server behind this door (``Forwarder`` and the platform's
/// interceptors), which answers as it always has. The rules live there; this door only takes the common
/// call past a second gRPC server and client (services/gateway/README.md, Forwarding).
final class FrontDoor: ListeningService, Sendable {
    let placement: FrontPlacement
    let plan: RelayPlan
    /// The gateway's event loop: this door's connections, its backend connections and every relayed call
    /// run on it, so a call's frames are never handed between threads.
    let loop: any EventLoop
    let observer: CallObserverInterceptor
    /// The process's metrics, which the door's connections to backends count in too.
    let metrics: RPCMetrics
    /// Calls relayed straight to a backend, and calls handed to the gateway's server
    /// (`kangyi_gateway_calls_total{path="direct"|"server"}`).
    let directCalls: Metrics.Counter
    let serverCalls: Metrics.Counter
    let logger: Logger
    /// Connections to each backend, by name, for the calls relayed straight to it.
    let backends: [String: BackendConnections]

    private let state = Mutex(State())
    private let bound: EventLoopPromise<String>
    private let drained: EventLoopPromise<Void>

    private struct State {
        var connections: [ObjectIdentifier: any Channel] = [:]
        var quiescing = false
    }

    init(
        placement: FrontPlacement, plan: RelayPlan, backendAddresses: [String: PeerAddress], loop: any EventLoop,
        metrics: RPCMetrics, logger: Logger
    ) {
        self.placement = placement
        self.plan = plan
        self.loop = loop
        self.observer = CallObserverInterceptor(logger: logger, metrics: metrics)
        self.directCalls = metrics.counter("kangyi_gateway_calls_total", dimensions: [("path", "direct")])
        self.serverCalls = metrics.counter("kangyi_gateway_calls_total", dimensions: [("path", "server")])
        self.logger = logger
        self.metrics = metrics
        self.backends = backendAddresses.mapValues {
            BackendConnections(address: $0, loop: loop, logger: logger, metrics: metrics)
        }
        self.bound = loop.makePromise()
        self.drained = loop.makePromise()
    }

    deinit {
        // A door never run (its server serves TLS itself, or a test leaves it out) keeps no promise open.
        bound.fail(CancellationError())
        drained.succeed()
    }

    func listeningAddress() async throws -> String { try await bound.futureResult.get() }

    func run() async throws {
        let own: BackendConnections
        let listener: any Channel
        do {
            own = BackendConnections(
                address: try PeerAddress(await placement.server(), of: "the gateway's own server"), loop: loop, logger: logger,
                metrics: metrics)
            listener = try await ServerBootstrap(group: loop)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [self] connection in
                    connection.eventLoop.makeCompletedFuture { try self.configure(connection, own: own) }
                }
                .bind(host: placement.host, port: placement.port).get()
        } catch {
            bound.fail(error)
            throw error
        }
        own.start()
        for backend in backends.values { backend.start() }
        if let address = listener.localAddress, let port = address.port {
            bound.succeed("\(address.ipAddress ?? placement.host):\(port)")
        } else {
            bound.succeed("\(placement.host):\(placement.port)")
        }
        defer {
            own.close()
            for backend in backends.values { backend.close() }
        }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await listener.closeFuture.get()
                try await drained.futureResult.get()
            } onGracefulShutdown: { [self] in
                loop.execute { self.quiesce(listener) }
            }
        } onCancel: { [self] in
            loop.execute { self.closeAll(listener) }
        }
    }

    /// One caller connection: HTTP/2 with the limits of every Kangyi server, its lifetime managed as
    /// grpc-swift's are (keepalive pings, maximum age and grace, a graceful close on shutdown, a peer that
    /// stops answering closed), and each stream a relayed call.
    private func configure(_ connection: any Channel, own: BackendConnections) throws {
        let limits = placement.limits
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: connection.eventLoop,
            configuration: .init(
                maxIdleTime: nil, maxAge: TimeAmount(limits.connectionMaxAge),
                maxGraceTime: TimeAmount(limits.connectionMaxGrace),
                keepalive: .init(
                    pingInterval: TimeAmount(limits.keepaliveInterval), ackTimeout: TimeAmount(limits.keepaliveTimeout))))
        var settings = NIOHTTP2Handler.ConnectionConfiguration()
        settings.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: 65_535),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 14),
            HTTP2Setting(parameter: .maxHeaderListSize, value: HPACKDecoder.defaultMaxHeaderListSize),
        ]
        let sync = connection.pipeline.syncOperations
        _ = try sync.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: settings, streamConfiguration: .init(),
            streamDelegate: management.http2StreamDelegate
        ) { [self] stream in
            stream.eventLoop.makeCompletedFuture {
                let call = RelayedCall(door: self, own: own)
                try stream.pipeline.syncOperations.addHandler(call.caller)
            }
        }
        try sync.addHandler(ClosesDeadConnections(limits: limits))
        try sync.addHandler(management)
        try sync.addHandler(ClosesOnConnectionError())

        let id = ObjectIdentifier(connection)
        let quiescing = state.withLock { state in
            state.connections[id] = connection
            return state.quiescing
        }
        if quiescing { connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        connection.closeFuture.whenComplete { [self] _ in
            let done = state.withLock { state in
                state.connections[id] = nil
                return state.quiescing && state.connections.isEmpty
            }
            if done { drained.succeed() }
        }
    }

    /// Stops accepting and closes every connection gracefully: GOAWAY, the calls in flight finish (within
    /// the connection's grace) and every stream is ended UNAVAILABLE (``OpenStreams``), then the connection
    /// closes.
    private func quiesce(_ listener: any Channel) {
        let open = stopAccepting(listener)
        // Streams do not end by themselves (a watch relayed to a backend that stays up): told to open
        // again, elsewhere, now rather than cut at the end of the drain.
        plan.tokens.openStreams.endAll(with: OpenStreams.shuttingDown)
        logger.debug("front door closing", metadata: ["connections": "\(open.count)"])
        if open.isEmpty { drained.succeed() }
        for connection in open { connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
    }

    /// Past the drain budget: every connection closed at once.
    private func closeAll(_ listener: any Channel) {
        for connection in stopAccepting(listener) { connection.close(promise: nil) }
        drained.succeed()
    }

    /// Closes the listener; the connections still open.
    private func stopAccepting(_ listener: any Channel) -> [any Channel] {
        listener.close(promise: nil)
        return state.withLock { state in
            state.quiescing = true
            return Array(state.connections.values)
        }
    }

    /// Where a new call goes.
    enum Way {
        /// Straight to its backend, with its rewritten headers.
        case direct(DirectCall)
        /// To the gateway's own server.
        case server
        /// The token is not in the cache: look it up (``lookUp(_:)``), then ask again.
        case lookUp(token: String)
    }

    /// Where a new call goes, by its headers. A direct call takes its place in the rate and in-flight
    /// limits. `lookedUp`: its token has just been looked up, and is not asked for again.
    func way(for headers: HPACKHeaders, lookedUp: Bool = false) -> Way {
        guard let path = headers.first(name: ":path"), let route = plan.routes[path],
            headers.first(name: "content-type")?.hasPrefix("application/grpc") == true,
            (headers.first(name: "grpc-encoding") ?? "identity") == "identity",
            case let caller = ForwardedMetadata.callerHeaders(headers), caller.size <= ForwardedMetadata.callerHeaderLimit,
            let authorization = caller.authorization, let token = BearerIdentity.bearer(inHeader: authorization),
            TokenStore.isWellFormed(token)
        else { return .server }
        guard case .some(let known) = plan.tokens.cache.get(token) else { return lookedUp ? .server : .lookUp(token: token) }
        guard let holder = known, holder.scopes.contains(route.scope), let backend = backends[route.backend], backend.isUp else {
            return .server
        }
        // Counted in the server's own in-flight count: the limit is one per port, whichever way a call goes.
        let counted = placement.inFlight.counts(route.method)
        if counted, !placement.inFlight.enter() { return .server }
        guard plan.limiter.take(holder) == nil else {
            if counted { placement.inFlight.leave() }
            return .server
        }
        let identity = CallerIdentity(
            requestID: headers[CallerIdentity.requestIDKey].first(where: RequestID.isWellFormed) ?? RequestID.mint(),
            caller: holder.caller, department: holder.department, scopes: Set(holder.scopes))
        return .direct(
            DirectCall(
                route: route, counted: counted, token: holder.id, identity: identity, backend: backend,
                headers: RelayPlan.forwarded(headers, identity: identity, method: route.method, key: plan.identityKey)))
    }

    /// Looks a token up (the database, once per token and cache lifetime), then calls `then` on the loop.
    /// A call's first use of a token then goes straight to its backend too: a terminal's hour-long upload
    /// stream is decided by its first call.
    func lookUp(_ token: String, then: @escaping @Sendable () -> Void) {
        let tokens = plan.tokens
        let loop = loop
        Task {
            _ = try? await tokens.authenticate(token)
            loop.execute(then)
        }
    }

}

/// A call the front door relays straight to its backend.
struct DirectCall {
    let route: RelayPlan.Route
    /// It holds a slot of the in-flight count (not a server stream).
    let counted: Bool
    /// The token that admitted it.
    let token: UUID
    let identity: CallerIdentity
    /// Its backend's connections, one of them up (``BackendConnections/whenRoom(within:_:)`` picks one).
    let backend: BackendConnections
    /// The caller's headers as the backend receives them.
    let headers: HPACKHeaders
    let start = ContinuousClock.now
}

/// What the front door needs to know to relay a call directly: the routes, and the gateway's own token
/// cache, rate limiter and identity key (shared with its server, so both paths apply one rule).
struct RelayPlan: Sendable {
    struct Route: Sendable {
        /// `package.Service/Method`.
        let method: String
        let backend: String
        let scope: String
        /// Its whole request can be kept for a second try: not a client stream.
        let replayable: Bool
        /// A stream either way, which may outlive its token (``OpenStreams``).
        let streams: Bool
    }

    /// By `:path`.
    let routes: [String: Route]
    let tokens: TokenStore
    let limiter: RateLimiter
    let identityKey: IdentityKey

    init(methods: [(method: Routes.Method, backend: String)], scopes: [String: String], admission: Admission, identityKey: IdentityKey) {
        var routes: [String: Route] = [:]
        for (method, backend) in methods {
            guard let scope = scopes[method.fullName] else { continue }
            routes["/\(method.fullName)"] = Route(
                method: method.fullName, backend: backend, scope: scope, replayable: !method.clientStreaming,
                streams: method.clientStreaming || method.serverStreaming)
        }
        self.routes = routes
        self.tokens = admission.tokens
        self.limiter = admission.limiter
        self.identityKey = identityKey
    }

    /// The caller's headers as a backend receives them: what the gateway owns replaced by the identity of
    /// the token, signed for the method (as ``IdentityPropagationInterceptor`` signs a forwarded call's).
    static func forwarded(_ headers: HPACKHeaders, identity: CallerIdentity, method: String, key: IdentityKey) -> HPACKHeaders {
        var out = HPACKHeaders()
        out.reserveCapacity(headers.count + 5)
        for (name, value, indexing) in headers where !ForwardedMetadata.gatewayOwned.contains(name) {
            out.add(name: name, value: value, indexing: indexing)
        }
        var signed = Metadata()
        SignedIdentity.attach(identity, method: method, key: key, to: &signed)
        for (name, value) in signed {
            if case .string(let string) = value { out.add(name: name, value: string) }
        }
        return out
    }
}

extension ForwardedMetadata {
    /// `headers`' size as HTTP/2 counts it against a header list limit, and their `authorization` when
    /// there is exactly one (two are refused on the server's way): one pass, allocating nothing, for every
    /// call at the door.
    static func callerHeaders(_ headers: HPACKHeaders) -> (size: Int, authorization: String?) {
        var size = 0
        var authorization: String?
        var authorizations = 0
        for (name, value, _) in headers {
            size += name.utf8.count + value.utf8.count + 32
            if name == "authorization" {
                authorizations += 1
                authorization = value
            }
        }
        return (size, authorizations == 1 ? authorization : nil)
    }
}
