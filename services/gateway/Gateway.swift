import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiAPI
import KangyiPlatform

/// The gateway as the platform runs it: `kangyi serve gateway`, or inside `kangyi dev`. Its gRPC port
/// forwards every routed method (``Routes``) after the admission checks; its HTTP port
/// (`KANGYI_HTTP_PORT`) offers the same RPCs as JSON.
public enum Gateway {
    public static let definition = ServiceDefinition(
        name: "gateway", defaultPort: 50050, migrations: GatewayMigrations.all,
        calls: Set(Routes.backends.values).sorted(), facesOutside: true, servesFromOneEventLoop: true
    ) { runtime in
        // A forwarded call is short steps between two connections — the caller's and the backend's — so
        // both, and the handlers between them, share one event loop: a call is never handed to another
        // thread on its way through (services/gateway/README.md, Performance).
        var backends: [String: BackendClients<HTTP2ClientTransport.Posix>] = [:]
        for backend in Set(Routes.backends.values) {
            // Logged and counted as the front door's connections are (BackendConnections), by the same labels.
            let (address, logger, metrics) = (runtime.peers[backend] ?? backend, runtime.logger, runtime.metrics)
            let onRetire: @Sendable () -> Void = {
                BackendLink.reportRetired(backend: address, because: .resets, logger: logger, metrics: metrics)
            }
            backends[backend] = BackendClients(onRetire: onRetire, make: try runtime.peerClientMaker(backend))
        }
        var assembled = try assemble(backends: backends, routes: Routes.backends, scopes: Scopes.required, runtime: runtime)
        assembled.background += backends.values.map { $0 }
        return assembled
    }

    /// The gateway over the given backend clients: `routes` maps each fronted service to a backend name,
    /// `scopes` each method to the scope it needs. (Tests assemble it with routes of their own.)
    static func assemble<Transport: ClientTransport>(
        backends: [String: BackendClients<Transport>], routes: [String: String], scopes: [String: String],
        runtime: ServiceRuntime, index: DescriptorIndex = .embedded
    ) throws -> AssembledService {
        let tokens = TokenStore(client: runtime.database, logger: runtime.logger)
        let relayed = routes.sorted(by: { $0.key < $1.key }).filter { backends[$0.value] != nil }.flatMap { service, backend in
            Routes.methods(of: service, in: index).map { (method: $0, backend: backend) }
        }
        let forwarded = relayed.compactMap { method, backend in backends[backend].map { (method: method, backend: $0) } }
        let identity = BearerIdentity(tokens: tokens)
        let admission = Admission(tokens: tokens, required: scopes)
        let door = JSONDoor(
            methods: Dictionary(uniqueKeysWithValues: forwarded.map { ($0.method.fullName, $0) }), identity: identity,
            admission: admission, metrics: runtime.metrics, host: runtime.settings.host, port: runtime.settings.httpPort,
            maxBodyBytes: runtime.settings.server.maxRequestBytes, idleTimeout: runtime.settings.server.silentConnectionLimit,
            logger: runtime.logger)
        // The gRPC port: calls the gateway would forward anyway go straight to their backends; the rest
        // to the server assembled here, behind the door.
        var addresses: [String: PeerAddress] = [:]
        let routed = Set(routes.values)
        for (name, address) in runtime.peers where routed.contains(name) {
            addresses[name] = try PeerAddress(address, of: name)
        }
        let front: (@Sendable (FrontPlacement) -> any ListeningService)? = runtime.settings.identityKey.map { [addresses] key in
            let plan = RelayPlan(methods: relayed, scopes: scopes, admission: admission, identityKey: key)
            return { placement in
                FrontDoor(
                    placement: placement, plan: plan, backendAddresses: addresses, loop: runtime.eventLoop.eventLoop,
                    metrics: runtime.metrics, logger: runtime.logger)
            }
        }
        return AssembledService(
            rpcServices: [Forwarder(routes: forwarded, openStreams: tokens.openStreams)],
            background: [RevocationSweep(tokens: tokens, interval: TokenStore.cacheLifetime, logger: runtime.logger)],
            identity: RequestContextInterceptor(resolve: { metadata, _ in await identity.resolve(metadata) }),
            admission: [AdmissionInterceptor(admission: admission)],
            http: door, front: front)
    }
}
