#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KangyiPlatform
import Logging
import NIOCore
import NIOHTTP2
import NIOPosix

/// Plaintext HTTP/2 connections from the ``FrontDoor`` to one backend (`host:port`): one to each address
/// the name resolves to — behind a headless Kubernetes Service, each replica — taken in turn, and more
/// while those carry their most calls (``BackendLink/streamsPerLink``). A
/// connection that closes, says GOAWAY (a backend recycling its connections, or stopping) or breaks the
/// protocol (``ClosesOnConnectionError`` closes it) is replaced at once, the name resolved again; a
/// backend that cannot be reached is tried again after 0.2 s growing to 1 s; every 30 s the name is
/// resolved again for replicas added. A connection whose backend stops answering PINGs is closed and
/// replaced too (``PingsBackend``), and one on which the door has reset many streams is retired before the
/// backend would end it (``BackendLink``). While no connection is up, a call goes the gateway's slower,
/// retrying way (or, for the gateway's own server, is refused); while all are full it waits for room
/// (``whenRoom(within:_:)``). All on `loop`.
final class BackendConnections: @unchecked Sendable {
    let host: String
    let port: Int
    let loop: any EventLoop
    let logger: Logger
    /// How often an idle or busy connection is pinged, and how long an answer may take.
    let pingInterval: TimeAmount
    let pingTimeout: TimeAmount
    /// For `kangyi_gateway_backend_connections_retired_total{backend, reason}`.
    let metrics: RPCMetrics?

    // Touched only on `loop`.
    private var ready: [Ready] = []
    private var all: [ObjectIdentifier: any Channel] = [:]
    private var connecting: Set<SocketAddress> = []
    private var cursor = 0
    private var failures = 0
    private var stopped = false
    /// Calls waiting for room (``whenRoom(within:_:)``), oldest first; one that gave up behind one still
    /// waiting stays until reached.
    private var waiting = CircularBuffer<Waiter>()
    private var waitingCount = 0

    /// The most calls that wait for room at once; beyond it a call is answered nil at once.
    static let waitingLimit = 4096
    /// How long a call waits for room at most. A new connection takes milliseconds, but its first calls
    /// are answered behind the burst that filled the others: with 1 s, a debug build in CI refused 29 of
    /// 300 calls at once. The waiters are bounded all the same: a direct call waits holding its slot of
    /// the in-flight limit, which refuses the excess at once.
    static let roomPatience: TimeAmount = .seconds(5)

    private struct Ready {
        let address: SocketAddress
        let link: BackendLink
    }

    init(
        address: PeerAddress, loop: any EventLoop, logger: Logger, metrics: RPCMetrics?,
        pingInterval: TimeAmount = PingsBackend.interval, pingTimeout: TimeAmount = PingsBackend.timeout
    ) {
        self.host = address.host
        self.port = address.port
        self.loop = loop
        self.logger = logger
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.metrics = metrics
    }

    func start() {
        loop.execute { [self] in
            reconcile()
            loop.scheduleRepeatedTask(initialDelay: .seconds(30), delay: .seconds(30)) { [self] task in
                if stopped { task.cancel() } else { reconcile() }
            }
        }
    }

    /// A connection to open the next call's stream on, in turn, among those with room
    /// (``BackendLink/streamsPerLink``); nil while none is up or has room. When every one is full another
    /// is made beside them.
    func pick() -> BackendLink? {
        loop.preconditionInEventLoop()
        for _ in ready.indices {
            cursor &+= 1
            let link = ready[cursor % ready.count].link
            if link.openStreams < BackendLink.streamsPerLink { return link }
        }
        if let full = ready.first, connecting.isEmpty { connect(full.address) }
        return nil
    }

    /// Whether a connection is up (with room or not).
    var isUp: Bool {
        loop.preconditionInEventLoop()
        return !ready.isEmpty
    }

    /// Calls `then` with a connection that has room: at once if one has, otherwise as soon as one has (one
    /// of its calls ends, or the connection made beside the full ones is up), or with nil after `patience`
    /// or at once if no connection is up. A burst of calls beyond the connections' room then waits the
    /// milliseconds a new connection takes, instead of being refused or going the slower way (300 calls at
    /// once at a fresh gateway: 99 were refused).
    func whenRoom(within patience: TimeAmount = roomPatience, _ then: @escaping (BackendLink?) -> Void) {
        loop.preconditionInEventLoop()
        if waitingCount == 0, let link = pick() { return then(link) }
        guard !stopped, !ready.isEmpty, waitingCount < Self.waitingLimit else { return then(nil) }
        let waiter = Waiter(then)
        waiter.timeout = loop.assumeIsolated().scheduleTask(in: patience) { [self] in
            guard !waiter.answered else { return }
            waitingCount -= 1
            waiter.answer(nil)
            // Those that gave up leave the front at once: a backend whose full connections never free
            // would otherwise keep one a refused call.
            while waiting.first?.answered == true { waiting.removeFirst() }
        }
        waiting.append(waiter)
        waitingCount += 1
    }

    /// Gives links with room to the calls waiting for them, oldest first.
    private func serveWaiting() {
        while let waiter = waiting.first {
            guard !waiter.answered else {
                waiting.removeFirst()
                continue
            }
            guard let link = pick() else { return }
            waiting.removeFirst()
            waitingCount -= 1
            waiter.timeout?.cancel()
            waiter.answer(link)
        }
    }

    /// A call waiting for room, answered once.
    private final class Waiter {
        private let then: (BackendLink?) -> Void
        var timeout: Scheduled<Void>?
        private(set) var answered = false

        init(_ then: @escaping (BackendLink?) -> Void) { self.then = then }

        func answer(_ link: BackendLink?) {
            guard !answered else { return }
            answered = true
            then(link)
        }
    }

    func close() {
        loop.execute { [self] in
            stopped = true
            for channel in all.values { channel.close(promise: nil) }
            while let waiter = waiting.popFirst() {
                waiter.timeout?.cancel()
                waiter.answer(nil)
            }
            waitingCount = 0
        }
    }

    /// Resolves the name and connects to each address not yet connected.
    private func reconcile() {
        guard !stopped else { return }
        let (host, port) = (host, port)
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { try Self.resolve(host: host, port: port) }
            .whenComplete { [self] result in
                switch result {
                case .success(let addresses):
                    let held = Set(ready.map(\.address)).union(connecting)
                    for address in addresses where !held.contains(address) { connect(address) }
                case .failure(let error):
                    logger.debug("backend name not resolved", metadata: ["backend": "\(host):\(port)", "error": "\(error)"])
                    retryLater()
                }
            }
    }

    private func retryLater() {
        failures += 1
        let delay = min(1000, 200 * Int64(1 << min(failures - 1, 3)))
        loop.scheduleTask(in: .milliseconds(delay)) { [self] in reconcile() }
    }

    /// Connects to `address`; the new connection takes `replacing`'s place once it is up.
    private func connect(_ address: SocketAddress, replacing: (any Channel)? = nil) {
        guard !stopped else { return }
        connecting.insert(address)
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try BackendLink.attach(to: channel, onRoom: { [self] in if waitingCount > 0 { serveWaiting() } }) {
                        [self] reason in linkRetired(channel, because: reason)
                    }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(PingsBackend(interval: pingInterval, timeout: pingTimeout))
                    try sync.addHandler(ClosesOnConnectionError())
                }
            }
            .connect(to: address)
            .whenComplete { [self] result in
                connecting.remove(address)
                switch result {
                case .success(let channel):
                    guard !stopped, let link = try? channel.pipeline.syncOperations.handler(type: BackendLink.self), !link.retired
                    else { return channel.close(promise: nil) }
                    failures = 0
                    all[ObjectIdentifier(channel)] = channel
                    if let replacing { ready.removeAll { $0.link.channel === replacing } }
                    ready.append(Ready(address: address, link: link))
                    serveWaiting()
                    channel.closeFuture.whenComplete { [self] _ in
                        all[ObjectIdentifier(channel)] = nil
                        retire(channel)
                    }
                case .failure(let error):
                    logger.debug("backend not reached", metadata: ["backend": "\(address)", "error": "\(error)"])
                    if let replacing { retire(replacing) }
                    retryLater()
                }
            }
    }

    /// A link's own account of why it takes no new calls: logged and counted (``BackendLink/reportRetired``).
    private func linkRetired(_ channel: any Channel, because reason: BackendLink.Retirement) {
        BackendLink.reportRetired(backend: "\(host):\(port)", because: reason, logger: logger, metrics: metrics)
        if reason == .resets, let spent = ready.first(where: { $0.link.channel === channel }), !connecting.contains(spent.address) {
            // Still good for the other half of the backend's limit: it takes calls until its replacement
            // is up, so that none goes the gateway's slower way meanwhile.
            connect(spent.address, replacing: channel)
        } else {
            retire(channel)
        }
    }

    /// Takes no new calls; its open ones finish. Another connection is made at once.
    private func retire(_ channel: any Channel) {
        let before = ready.count
        ready.removeAll { $0.link.channel === channel }
        if ready.count < before { reconcile() }
    }

    /// Every address `host` resolves to, for TCP.
    static func resolve(host: String, port: Int) throws -> [SocketAddress] {
        if let literal = try? SocketAddress(ipAddress: host, port: port) { return [literal] }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else { throw PlatformError(description: "\(host) does not resolve (getaddrinfo \(status))") }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var next = list
        while let info = next {
            if let address = info.pointee.ai_addr {
                switch info.pointee.ai_family {
                case AF_INET:
                    let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                    addresses.append(SocketAddress(ipv4, host: host))
                case AF_INET6:
                    let ipv6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                    addresses.append(SocketAddress(ipv6, host: host))
                default:
                    break
                }
            }
            next = info.pointee.ai_next
        }
        var seen = Set<SocketAddress>()
        return addresses.filter { seen.insert($0).inserted }
    }
}
