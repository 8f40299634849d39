import KangyiPlatform
import Logging
import NIOCore
import NIOHTTP2

/// One of ``BackendConnections``' connections, as the calls the ``FrontDoor`` relays over it use it: its
/// streams, and the streams the door has reset on it.
///
/// A backend's HTTP/2 stack ends a connection whose peer resets more than 200 streams in 30 s (NIOHTTP2's
/// guard against rapid-reset floods, in every grpc-swift server) with GOAWAY ENHANCE_YOUR_CALM, losing
/// every call still on it. The door funnels many callers' calls onto one connection, so their
/// cancellations add up there: seven citizens a second giving up would be enough. So once its
/// ``ResetBudget`` is spent the link is retired: new calls take a fresh connection
/// as soon as it is up, and this one closes once its last stream has (its calls may still spend the other
/// half of the limit).
///
/// Also in the connection's pipeline, after the HTTP/2 handler, to see the backend's GOAWAY and the
/// connection's errors: the link is then retired too, its open calls finishing. All on the connection's
/// event loop.
final class BackendLink: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    /// The most calls a link carries: all of them may be cancelled at once (their callers' client gone)
    /// without reaching the backend's limit of resets. ``BackendConnections`` opens another link beside it.
    static let streamsPerLink = 100
    /// How many streams the door has reset whose late frames are still recognised and dropped.
    /// NIOHTTP2 remembers 32; a frame for a stream reset before those is a connection error (STREAM_CLOSED)
    /// that ends every call on the connection. A backend answering a burst of calls whose callers all left
    /// (a client's connection lost with many calls on it) outruns 32 within one round trip; a link carries
    /// at most the backend's concurrent streams (1,000 by default) at once.
    static let recentlyResetStreams = 4096

    /// Counts retired backend connections, the door's links and the server way's clients alike, by
    /// `backend` (host:port) and `reason` (a ``Retirement``).
    static let retiredMetric = "kangyi_gateway_backend_connections_retired_total"

    /// Logs and counts a retired connection to `backend` (host:port), a door's link or a server-way
    /// client: a notice, or debug for a GOAWAY (a backend recycling its connections is routine; resets
    /// spent or a broken connection are worth a look).
    static func reportRetired(backend: String, because reason: Retirement, logger: Logger, metrics: RPCMetrics?) {
        logger.log(
            level: reason == .goAway ? .debug : .notice, "backend connection retired",
            metadata: ["backend": "\(backend)", "reason": "\(reason.rawValue)"])
        metrics?.counter(retiredMetric, dimensions: [("backend", backend), ("reason", reason.rawValue)]).increment()
    }

    /// Why a link takes no new calls.
    enum Retirement: String {
        /// The backend said GOAWAY: it is recycling its connections, or stopping.
        case goAway = "goaway"
        /// The door reset its budget of streams on it.
        case resets
        /// The connection failed (NIOHTTP2 has said GOAWAY on it, or the socket broke).
        case error
    }

    let channel: any Channel
    /// Told once, when the link should take no new calls (``BackendConnections`` decides when it stops).
    private let onRetire: (Retirement) -> Void
    /// Told whenever one of its streams has closed: it has room for another call.
    private let onRoom: () -> Void

    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    // Touched only on the channel's event loop.
    /// Streams asked for and not yet closed.
    private(set) var openStreams = 0
    private var resets: ResetBudget
    private(set) var retired = false

    /// Adds the client's HTTP/2 handler to `channel`'s pipeline, and a link after it. A stream the backend
    /// pushes is refused: backends never open streams of their own.
    @discardableResult
    static func attach(
        to channel: any Channel, resetBudget: Int = ResetBudget.resets, onRoom: @escaping () -> Void = {},
        onRetire: @escaping (Retirement) -> Void
    ) throws -> BackendLink {
        let sync = channel.pipeline.syncOperations
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.maximumRecentlyResetStreams = recentlyResetStreams
        let multiplexer = try sync.configureHTTP2Pipeline(
            mode: .client, connectionConfiguration: connection, streamConfiguration: .init()
        ) { pushed in pushed.close() }
        let link = BackendLink(
            channel: channel, multiplexer: multiplexer, resetBudget: resetBudget, onRoom: onRoom, onRetire: onRetire)
        try sync.addHandler(link)
        return link
    }

    private init(
        channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, resetBudget: Int,
        onRoom: @escaping () -> Void, onRetire: @escaping (Retirement) -> Void
    ) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.resets = ResetBudget(resets: resetBudget)
        self.onRoom = onRoom
        self.onRetire = onRetire
    }

    /// Opens a stream for a call. It counts as open from now until its channel closes: a retired link
    /// must not close under a stream whose first frame is not yet written.
    func createStream(_ initializer: @escaping NIOChannelInitializer) -> EventLoopFuture<any Channel> {
        let opened = channel.eventLoop.makePromise(of: (any Channel).self)
        openStreams += 1
        multiplexer.createStreamChannel(promise: opened, initializer)
        opened.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let stream): stream.closeFuture.assumeIsolated().whenComplete { _ in self.streamEnded() }
            case .failure: streamEnded()
            }
        }
        return opened.futureResult
    }

    private func streamEnded() {
        openStreams -= 1
        if retired {
            if openStreams == 0 { channel.close(promise: nil) }
        } else {
            onRoom()
        }
    }

    /// A call has reset its stream to the backend.
    func resetSent() {
        if resets.spend() { retire(because: .resets) }
    }

    /// Tells its owner to give it no new calls (after a spent budget of resets, once a replacement is up),
    /// and closes once its last stream has.
    func retire(because reason: Retirement) {
        guard !retired else { return }
        retired = true
        onRetire(reason)
        if openStreams == 0 { channel.close(promise: nil) }
    }

    // MARK: ChannelInboundHandler

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { retire(because: .goAway) }
        context.fireChannelRead(data)
    }

    /// Any error but one stream's leaves the connection unfit for new calls: after a connection error
    /// NIOHTTP2 has said GOAWAY, and a stream opened after it is never answered.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !(error is NIOHTTP2Errors.StreamError) { retire(because: .error) }
        context.fireErrorCaught(error)
    }
}

/// The resets a connection may send a backend: the backend's HTTP/2 ends a connection whose peer resets
/// more than 200 streams in 30 s, so the budget is half of that, counted over the same sliding window.
/// One for the door's links (``BackendLink``) and the server way's clients (``BackendClients``).
struct ResetBudget {
    static let resets = 100
    static let window = Duration.seconds(30)

    private let budget: Int
    private var times = CircularBuffer<ContinuousClock.Instant>()

    init(resets: Int = ResetBudget.resets) { self.budget = resets }

    /// Counts a reset sent now; true once the budget is spent within the window.
    mutating func spend() -> Bool {
        let now = ContinuousClock.now
        while let first = times.first, first + Self.window <= now { times.removeFirst() }
        times.append(now)
        return times.count >= budget
    }
}
