import Crypto
import Foundation
import KangyiPlatform
import Logging
import PostgresNIO
import Synchronization

/// A caller as its token describes it.
public struct TokenHolder: Sendable, Equatable {
    public var id: UUID
    public var caller: String
    public var department: String
    public var scopes: [String]
    public var ratePerSecond: Double
    public var burst: Int
    public var expiresAt: Date?
    public var revokedAt: Date?
    public var createdAt: Date
}

/// `gateway.tokens`: bearer tokens, kept only as SHA-256 hashes. Authentication is cached briefly
/// (``cacheLifetime``) by the token as presented, so a call costs neither a hash nor a database round
/// trip (the gateway checks a call's token twice: for its identity and for admission), and a revocation
/// takes effect within the lifetime. The cache lives in memory only, where the token already is.
public struct TokenStore: Sendable {
    let client: DatabasePool
    let logger: Logger
    let cache = Cache()
    /// The streams each token has open (``RevocationSweep`` ends them when it is revoked or expires).
    let openStreams = OpenStreams()
    /// How long an answer (a holder, or "no such token") is reused.
    static let cacheLifetime: Duration = .seconds(10)
    /// How long a call waits for its token's look-up at most. While the database is away postgres-nio's
    /// pool holds a look-up until it gives up reconnecting (a minute), and once the database is back until
    /// its next attempt: a terminal's upload stream, which has no deadline, was held 27 s unanswered.
    static let lookUpPatience: Duration = .seconds(5)

    public init(client: DatabasePool, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A new random token: `kyt_` and 43 base64url characters (256 bits).
    static func mint() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "kyt_" + Base64URL.encode(bytes)
    }

    static func hash(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Data(token.utf8))) }

    /// Whether `token` has the shape ``mint()`` gives every token (`kyt_` and 43 base64url characters):
    /// anything else is unknown without a look-up or a place in the cache. Checked on every call, so
    /// without allocating.
    static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == 47 && token.hasPrefix("kyt_")
            && token.utf8.dropFirst(4).allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    true
                default: false
                }
            }
    }

    /// Stores a new token and returns it — the only time it is ever shown.
    public func create(
        caller: String, department: String, scopes: [String], ratePerSecond: Double, burst: Int, expiresAt: Date?
    ) async throws -> (TokenHolder, token: String) {
        let token = Self.mint()
        let id = UUID()
        let hash = Self.hash(token)
        let rows = try await client.query(
            """
            INSERT INTO gateway.tokens (id, token_hash, caller, department, scopes, rate_per_second, burst, expires_at)
            VALUES (\(id), \(Data(hash)), \(caller), \(department), \(scopes.sorted()), \(ratePerSecond), \(burst), \(expiresAt))
            RETURNING \(unescaped: Self.columns)
            """, logger: logger)
        for try await row in rows { return (try Self.decode(row), token) }
        throw PlatformError(description: "token was not stored")
    }

    /// Every token, newest first (hashes are never shown).
    public func list() async throws -> [TokenHolder] {
        var holders: [TokenHolder] = []
        for try await row in try await client.query(
            "SELECT \(unescaped: Self.columns) FROM gateway.tokens ORDER BY created_at DESC", logger: logger)
        {
            holders.append(try Self.decode(row))
        }
        return holders
    }

    /// Revokes a token by id; true if it was live.
    public func revoke(id: UUID) async throws -> Bool {
        var revoked = false
        for try await _ in try await client.query(
            "UPDATE gateway.tokens SET revoked_at = now() WHERE id = \(id) AND revoked_at IS NULL RETURNING id", logger: logger)
        {
            revoked = true
        }
        cache.clear()
        return revoked
    }

    /// The holder of a live (unrevoked, unexpired) token, or nil.
    public func authenticate(_ token: String) async throws -> TokenHolder? {
        guard Self.isWellFormed(token) else { return nil }
        if let cached = cache.get(token) { return cached }
        guard let found = try await abandoning(after: Self.lookUpPatience, { [self] in try await lookUp(token) }) else {
            try Task.checkCancellation()
            throw ServiceError.unavailable(
                reason: "TOKENS_UNAVAILABLE", "the gateway could not check the token within \(Self.lookUpPatience); retry later")
        }
        cache.put(token, found)
        return found
    }

    /// Which of `ids` are live tokens (neither revoked nor expired).
    func live(among ids: [UUID]) async throws -> Set<UUID> {
        var live = Set<UUID>()
        for try await id in try await client.query(
            """
            SELECT id FROM gateway.tokens
            WHERE id = ANY(\(ids)) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
            """, logger: logger
        ).decode(UUID.self) {
            live.insert(id)
        }
        return live
    }

    private func lookUp(_ token: String) async throws -> TokenHolder? {
        var found: TokenHolder?
        for try await row in try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM gateway.tokens
            WHERE token_hash = \(Data(Self.hash(token))) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
            """, logger: logger)
        {
            found = try Self.decode(row)
        }
        return found
    }

    static let columns = "id, caller, department, scopes, rate_per_second, burst, expires_at, revoked_at, created_at"

    static func decode(_ row: PostgresRow) throws -> TokenHolder {
        let (id, caller, department, scopes, rate, burst, expires, revoked, created) = try row.decode(
            (UUID, String, String, [String], Double, Int, Date?, Date?, Date).self)
        return TokenHolder(
            id: id, caller: caller, department: department, scopes: scopes, ratePerSecond: rate, burst: burst,
            expiresAt: expires, revokedAt: revoked, createdAt: created)
    }

    /// Recent answers by token, each good for ``cacheLifetime``; bounded (``limit``). When full, the
    /// answers "no such token" and those past their lifetime go first: a flood of made-up tokens does not
    /// push out the callers the gateway knows, whose calls would each wait for a look-up again.
    final class Cache: Sendable {
        private let entries = Mutex<[String: (holder: TokenHolder?, until: ContinuousClock.Instant)]>([:])
        let limit: Int

        init(limit: Int = 10_000) { self.limit = limit }

        func get(_ token: String) -> TokenHolder?? {
            entries.withLock { entries in
                guard let entry = entries[token], entry.until > .now else { return nil }
                // An expiry inside the cache lifetime still counts.
                if let expiresAt = entry.holder?.expiresAt, expiresAt <= Date() { return .some(nil) }
                return .some(entry.holder)
            }
        }

        func put(_ token: String, _ holder: TokenHolder?) {
            entries.withLock { entries in
                if entries.count >= limit {
                    let now = ContinuousClock.now
                    entries = entries.filter { $0.value.holder != nil && $0.value.until > now }
                    if entries.count >= limit { entries.removeAll() }
                }
                entries[token] = (holder, .now + TokenStore.cacheLifetime)
            }
        }

        func clear() { entries.withLock { $0.removeAll() } }
    }
}
