import Foundation
import GRPCCore
import KangyiPlatform
import Logging
import ServiceLifecycle
import Synchronization

/// The streams open through the gateway, by the token that admitted them, so that a revoked or expired
/// token stops speaking for the streams it opened too. A token is checked once, when a call starts; a
/// watch or an upload may run for hours after, and without this a revoked investigator's token kept
/// receiving personal data for as long as its watch stayed open. Every stream-carrying path registers:
/// the front door's direct relay (``RelayedCall``), the gateway's server (``Forwarder``) and the JSON
/// door's newline-delimited answers. Unary calls end within their deadlines and are not registered.
///
/// The same registry ends every stream when the gateway shuts down (``endAll(with:)``): a watch relayed to
/// a backend that is not shutting down never ends by itself, and held the gateway's drain to its last
/// second (20 s, then exit 1), where its caller could have reconnected to another replica at once.
final class OpenStreams: Sendable {
    struct Ticket: Sendable {
        fileprivate let token: UUID
        fileprivate let number: Int
    }

    typealias End = @Sendable (ServiceError) -> Void

    private struct State {
        var ends: [UUID: [Int: End]] = [:]
        var next = 0
        /// Set once the gateway is shutting down: a stream opened after is ended at once.
        var closedWith: ServiceError?
    }

    private let state = Mutex(State())

    /// What a stream of a revoked or expired token is told.
    static let revoked = ServiceError.unauthenticated(
        reason: "TOKEN_REVOKED", "the token that opened this stream was revoked or has expired; open it again with a live token")

    /// What a stream is told when the gateway shuts down.
    static let shuttingDown = ServiceError.unavailable(
        reason: "GATEWAY_SHUTTING_DOWN", "the gateway is shutting down; open the stream again")

    /// Registers a stream opened under `token`; `end` ends it with the status given (called at most once,
    /// from another task or thread: it must hop to the stream's own loop or task itself).
    func open(token: UUID, end: @escaping End) -> Ticket {
        let (ticket, closed) = state.withLock { state in
            state.next += 1
            if state.closedWith == nil { state.ends[token, default: [:]][state.next] = end }
            return (Ticket(token: token, number: state.next), state.closedWith)
        }
        if let closed { end(closed) }
        return ticket
    }

    /// `body`, relaying `call`'s answer, with the stream registered under `token` (nil: a service open
    /// without one) for as long as it runs: ended from here, `call` throws the status to `body`.
    func relaying<Transport: ClientTransport, T>(
        _ call: BackendCall<Transport>, under token: UUID?, _ body: () async throws -> T
    ) async throws -> T {
        let ticket = token.map { open(token: $0) { call.end(throwing: $0) } }
        defer { ticket.map(close) }
        return try await body()
    }

    /// The stream has ended (any way): forgotten.
    func close(_ ticket: Ticket) {
        state.withLock { state in
            state.ends[ticket.token]?[ticket.number] = nil
            if state.ends[ticket.token]?.isEmpty == true { state.ends[ticket.token] = nil }
        }
    }

    /// The tokens with a stream open.
    var tokens: [UUID] { state.withLock { Array($0.ends.keys) } }

    /// Ends every stream opened under a token not in `live`; returns how many.
    @discardableResult
    func end(allBut live: Set<UUID>, among checked: [UUID]) -> Int {
        let ends = state.withLock { state in
            var ends: [End] = []
            for token in checked where !live.contains(token) {
                ends += state.ends.removeValue(forKey: token).map { Array($0.values) } ?? []
            }
            return ends
        }
        for end in ends { end(Self.revoked) }
        return ends.count
    }

    /// Ends every stream with `error`, and any opened from now on (the gateway is shutting down).
    @discardableResult
    func endAll(with error: ServiceError) -> Int {
        let ends = state.withLock { state in
            state.closedWith = error
            defer { state.ends = [:] }
            return state.ends.values.flatMap(\.values)
        }
        for end in ends { end(error) }
        return ends.count
    }
}

/// Every `interval`, asks the database which of the tokens with a stream open are still live, and ends
/// the streams of the rest. While the database is away nothing is ended: the streams' own backends
/// depend on it, and a token that cannot be checked has not been shown revoked.
///
/// Not `repeatUntilShutdown`: shutdown cancels only the wait between rounds, so a query in flight ends as
/// queries do, and its connection goes back to the pool, which closes last; a database that does not
/// answer is given up on after 5 s (``TokenStore/lookUpPatience``).
struct RevocationSweep: Service {
    let tokens: TokenStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while (try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }) != nil,
            !Task.isShuttingDownGracefully
        {
            do {
                try await sweep()
            } catch {
                logger.warning("revocation sweep failed", metadata: ["error": "\(loggableDescription(of: error))"])
            }
        }
    }

    func sweep() async throws {
        let checked = tokens.openStreams.tokens
        guard !checked.isEmpty else { return }
        guard let live = try await abandoning(after: TokenStore.lookUpPatience, { try await tokens.live(among: checked) }) else {
            return
        }
        let ended = tokens.openStreams.end(allBut: live, among: checked)
        if ended > 0 { logger.notice("streams ended: their token was revoked or has expired", metadata: ["streams": "\(ended)"]) }
    }
}
