import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A gRPC client to another Kangyi service (`host:port`, a DNS name in Kubernetes), as a lifecycle
/// service: its connections run beside the server and close after it. Calls carry the identity of the
/// RPC being served (request id, caller, department, scopes), signed under the deployment's key for
/// the method called, so the peer believes it, logs it and attributes the call to the same person.
/// Background work calls as its service (`CallerIdentity(caller: "verification")`). Service code wraps
/// `grpc` in the generated client and never sees the transport.
public struct PeerClient: Service {
    public let name: String
    public let grpc: GRPCClient<HTTP2ClientTransport.Posix>

    /// A connection to a peer is pinged after this long without a read, and closed (then made again) when
    /// the answer takes longer than `timeout`: a peer whose host vanished without a word sends no FIN or
    /// RST, and its connection would otherwise hold calls until TCP gave up, many minutes later. Servers
    /// allow a PING every 10 s, with or without calls (``GRPCServerService``).
    public static let keepalive = (interval: Duration.seconds(20), timeout: Duration.seconds(10))

    /// - Parameter eventLoopGroup: where its connections live (``ServiceRuntime/peerClient(_:)`` puts them on
    ///   the service's event loop).
    public init(
        name: String, address: String, key: IdentityKey,
        eventLoopGroup: any EventLoopGroup = .singletonMultiThreadedEventLoopGroup
    ) throws {
        self.name = name
        self.grpc = try Self.makeClient(name: name, address: address, key: key, eventLoopGroup: eventLoopGroup)
    }

    /// The client a ``PeerClient`` holds, for a caller that runs its connections itself (the gateway
    /// replaces its backends' clients before their cancelled calls cost a connection).
    public static func makeClient(
        name: String, address: String, key: IdentityKey,
        eventLoopGroup: any EventLoopGroup = .singletonMultiThreadedEventLoopGroup
    ) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
        let peer = try PeerAddress(address, of: name)
        let transport = try HTTP2ClientTransport.Posix(
            target: .dns(host: peer.host, port: peer.port), transportSecurity: .plaintext,
            config: .defaults { config in
                // A peer that is down is retried soon, not after minutes of backoff: calls that wait for a
                // connection (within their deadline) get one within a second of the peer's return.
                config.backoff = .init(initial: .milliseconds(200), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
                config.connection.flushCoalescing = FlushWindow.client
                config.connection.keepalive = .init(
                    time: Self.keepalive.interval, timeout: Self.keepalive.timeout, allowWithoutCalls: true)
            },
            // Every address the name resolves to, in turn: behind a headless Kubernetes Service that is
            // every replica, re-resolved when servers recycle connections (KANGYI_CONNECTION_MAX_AGE_S).
            serviceConfig: ServiceConfig(loadBalancingConfig: [.roundRobin]), eventLoopGroup: eventLoopGroup)
        return GRPCClient(transport: transport, interceptors: [IdentityPropagationInterceptor(key: key)])
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await grpc.runConnections()
        } onGracefulShutdown: { [grpc] in
            grpc.beginGracefulShutdown()
        }
    }
}

/// Another service's gRPC address: `host:port`, the host a DNS name in Kubernetes.
public struct PeerAddress: Sendable {
    public var host: String
    public var port: Int

    /// `address` of the peer `name` (named in the error when it is not `host:port`).
    public init(_ address: String, of name: String) throws {
        let parts = address.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = Int(parts[1]), !parts[0].isEmpty else {
            throw PlatformError(description: "peer address for \(name) must be host:port, not \(address)")
        }
        self.host = String(parts[0])
        self.port = port
    }
}

/// Copies ``CallerIdentity/current`` into an outgoing call's metadata, signed for its method.
struct IdentityPropagationInterceptor: ClientInterceptor {
    let key: IdentityKey

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        SignedIdentity.attach(
            CallerIdentity.current, method: context.descriptor.fullyQualifiedMethod, key: key, to: &request.metadata)
        return try await next(request, context)
    }
}

extension ServiceRuntime {
    /// A client to the named peer service, at the address this deployment gives it. Add it to the
    /// service's `background` so its connections start and stop with the process. Its connections live on
    /// ``eventLoop``: for a service that serves from one event loop, a call to the peer is then made,
    /// answered and resumed on the thread its handler runs on.
    public func peerClient(_ name: String) throws -> PeerClient {
        let (address, key) = try peer(name)
        return try PeerClient(name: name, address: address, key: key, eventLoopGroup: eventLoop.eventLoop)
    }

    /// Makes clients to the named peer as ``peerClient(_:)`` does, each with connections of its own, which
    /// whoever made it runs (``PeerClient/makeClient(name:address:key:eventLoopGroup:)``).
    public func peerClientMaker(_ name: String) throws -> @Sendable () throws -> GRPCClient<HTTP2ClientTransport.Posix> {
        let (address, key) = try peer(name)
        _ = try PeerAddress(address, of: name)  // refused now, not at the first call
        let loop = eventLoop.eventLoop
        return { try PeerClient.makeClient(name: name, address: address, key: key, eventLoopGroup: loop) }
    }

    private func peer(_ name: String) throws -> (address: String, key: IdentityKey) {
        guard let address = peers[name] else {
            throw PlatformError(
                description: "no address for peer service \(name): list it in the definition's `calls` and set KANGYI_\(name.uppercased())_ADDRESS")
        }
        guard let key = settings.identityKey else {
            throw PlatformError(description: "calls to peer service \(name) need KANGYI_IDENTITY_KEY")
        }
        return (address, key)
    }
}
