import Logging

/// Everything a Kangyi process reads from its environment (`KANGYI_*`), with the documented defaults.
/// A bad value stops start-up with a message that names the variable and what it expects; the value of a
/// secret (the database URL) is never echoed.
public struct Settings: Sendable {
    /// `KANGYI_DATABASE_URL`: `postgres://user[:password]@host[:port]/database`. Unset means
    /// `kangyi dev` runs its own embedded cluster; `kangyi serve` requires it.
    public var databaseURL: DatabaseURL?
    /// `KANGYI_HOST`: the address servers bind to. Default `127.0.0.1`.
    public var host: String
    /// `KANGYI_GRPC_PORT`: the port `kangyi serve` listens on. Default: the service's own port.
    public var grpcPort: Int?
    /// `KANGYI_METRICS_PORT`: the HTTP port that serves `/metrics`. Default 9464; 0 picks a free port.
    public var metricsPort: Int
    /// The gateway's JSON-over-HTTP port.
    public var httpPort: Int
    /// `KANGYI_LOG_LEVEL`: trace, debug, info, notice, warning, error, critical. Default `info`.
    public var logLevel: Logger.Level
    /// `KANGYI_DB_POOL_SIZE`: the most connections one process opens to PostgreSQL. Default 20.
    public var databasePoolSize: Int
    /// `KANGYI_HEALTH_PROBE_MS`: how often the database is probed for the health service. Default 1000.
    public var healthProbeInterval: Duration
    /// `KANGYI_DATA_DIR`: where `kangyi dev` keeps its embedded cluster and `dev.json`. Default `.data`.
    public var dataDirectory: String
    /// Limits of the gRPC servers.
    public var server: ServerLimits
    /// The certificate and key the gateway's gRPC door serves TLS with; unset: cleartext (TLS ends at
    /// the ingress).
    public var tls: TLSFiles?
    /// The deadline of one call to another Kangyi service (verification → intake).
    public var peerCallTimeout: Duration
    /// How often background work polls: outbox retries, escalation sweeps, feed reconnects.
    public var backgroundPollInterval: Duration
    /// `KANGYI_IDENTITY_KEY`: signs the identities services pass each other (``SignedIdentity``).
    /// Required by `kangyi serve`; `kangyi dev` makes one in its data folder.
    public var identityKey: IdentityKey?
    /// `KANGYI_SHUTDOWN_GRACE_S`: after SIGTERM, how long calls in flight may finish before they are
    /// cancelled and the process exits. Default 20 (Kubernetes' grace period must be longer).
    public var shutdownGrace: Duration
    /// `KANGYI_CHECKPOINT_RETENTION_DAYS`: how many days of vehicle logs the checkpoint service keeps
    /// (older daily partitions are dropped; older logs are refused). Default 30.
    public var checkpointRetentionDays: Int = 30
    /// `KANGYI_PII_KEY`, `KANGYI_PII_INDEX_KEY`, `KANGYI_PII_RETIRED_KEYS`: the keys that seal personal data
    /// at rest (``PersonalDataKeys``). Required by the tracing service; `kangyi dev` makes them.
    public var personalData: PersonalDataKeys?
    /// The tracing service's rules.
    public var tracing: TracingRules = .defaults
    /// The price-watch service's rules.
    public var priceWatch: PriceWatchRules = .defaults

    public struct PriceWatchRules: Sendable, Equatable {
        /// `KANGYI_PRICEWATCH_BASE_DATE`: a seller's pre-epidemic markup is its last transaction on or before
        /// this day (China Standard Time). Default 2020-01-19.
        public var baseDate: String
        /// `KANGYI_PRICEWATCH_MARKUP_CAP_PERCENT`: the markup cap for sellers without that history, where no
        /// markup-cap control applies. Default 35.
        public var markupCapPercent: Int
        /// `KANGYI_PRICEWATCH_JUMP_Z`: a robust z-score above this over the last 7 days is a sudden jump. Default 3.5.
        public var jumpZ: Double

        public static let defaults = PriceWatchRules(baseDate: "2020-01-19", markupCapPercent: 35, jumpZ: 3.5)

        public init(baseDate: String, markupCapPercent: Int, jumpZ: Double) {
            self.baseDate = baseDate
            self.markupCapPercent = markupCapPercent
            self.jumpZ = jumpZ
        }
    }

    public struct TracingRules: Sendable, Equatable {
        /// `KANGYI_TRACING_FOLLOW_UP_DAYS`: a contact is followed up until this many days after the last
        /// exposure. Default 14.
        public var followUpDays: Int
        /// `KANGYI_TRACING_LOST_AFTER_DAYS`: a task may be closed as lost to follow-up after unanswered
        /// calls on this many different days. Default 3.
        public var lostAfterDays: Int
        /// `KANGYI_TRACING_RETRY_MINUTES`: after an unanswered call, the task is offered again this much
        /// later. Default 60.
        public var retryAfter: Duration

        public static let defaults = TracingRules(followUpDays: 14, lostAfterDays: 3, retryAfter: .seconds(3600))

        public init(followUpDays: Int, lostAfterDays: Int, retryAfter: Duration) {
            self.followUpDays = followUpDays
            self.lostAfterDays = lostAfterDays
            self.retryAfter = retryAfter
        }
    }

    public struct ServerLimits: Sendable, Equatable {
        /// `KANGYI_MAX_REQUEST_BYTES`: the largest request message accepted. Default 4 MiB.
        public var maxRequestBytes: Int
        /// `KANGYI_MAX_CONCURRENT_STREAMS`: concurrent RPCs per HTTP/2 connection. Default 1000.
        public var maxConcurrentStreams: Int
        /// `KANGYI_KEEPALIVE_S`: idle time before the server pings a client. Default 60.
        public var keepaliveInterval: Duration
        /// `KANGYI_KEEPALIVE_TIMEOUT_S`: how long a ping may go unanswered. Default 20.
        public var keepaliveTimeout: Duration
        /// `KANGYI_CONNECTION_MAX_AGE_S`: connections are asked to go away after this long, so load
        /// rebalances across replicas. Default 300.
        public var connectionMaxAge: Duration
        /// `KANGYI_CONNECTION_MAX_GRACE_S`: how long RPCs on an ageing connection may still run. Default 30.
        public var connectionMaxGrace: Duration
        /// Calls in flight at once beyond which a server refuses new ones (RESOURCE_EXHAUSTED).
        public var maxInFlight: Int = 512

        /// How long a connection may go without a sign of its caller: a gRPC connection is pinged after
        /// `keepaliveInterval` and closed when the ping goes `keepaliveTimeout` unanswered; HTTP/1.1 has no
        /// pings, so the JSON door closes a connection silent this long (80 s by default, longer than the
        /// 60 s after which common load balancers drop an idle upstream connection themselves).
        public var silentConnectionLimit: Duration { keepaliveInterval + keepaliveTimeout }

        public static let defaults = ServerLimits(
            maxRequestBytes: 4 * 1024 * 1024, maxConcurrentStreams: 1000,
            keepaliveInterval: .seconds(60), keepaliveTimeout: .seconds(20),
            connectionMaxAge: .seconds(300), connectionMaxGrace: .seconds(30))
    }

    public init(
        databaseURL: DatabaseURL? = nil, host: String = "127.0.0.1", grpcPort: Int? = nil,
        metricsPort: Int = 9464, httpPort: Int = 8080, logLevel: Logger.Level = .info, databasePoolSize: Int = 20,
        healthProbeInterval: Duration = .seconds(1), dataDirectory: String = ".data",
        server: ServerLimits = .defaults, tls: TLSFiles? = nil, peerCallTimeout: Duration = .seconds(2),
        backgroundPollInterval: Duration = .seconds(1), identityKey: IdentityKey? = nil,
        shutdownGrace: Duration = .seconds(20)
    ) {
        self.databaseURL = databaseURL
        self.host = host
        self.grpcPort = grpcPort
        self.metricsPort = metricsPort
        self.httpPort = httpPort
        self.logLevel = logLevel
        self.databasePoolSize = databasePoolSize
        self.healthProbeInterval = healthProbeInterval
        self.dataDirectory = dataDirectory
        self.server = server
        self.tls = tls
        self.peerCallTimeout = peerCallTimeout
        self.backgroundPollInterval = backgroundPollInterval
        self.identityKey = identityKey
        self.shutdownGrace = shutdownGrace
    }

    /// Reads the settings from an environment (normally `ProcessInfo.processInfo.environment`).
    public init(environment: [String: String]) throws(SettingsError) {
        let env = EnvironmentReader(environment)
        let defaults = Settings()
        let limits = ServerLimits.defaults
        self.init(
            databaseURL: try env.databaseURL("KANGYI_DATABASE_URL"),
            host: try env.string("KANGYI_HOST", default: defaults.host),
            grpcPort: try env.optionalInt("KANGYI_GRPC_PORT", in: 0...65535),
            metricsPort: try env.int("KANGYI_METRICS_PORT", default: defaults.metricsPort, in: 0...65535),
            httpPort: try env.int("KANGYI_HTTP_PORT", default: defaults.httpPort, in: 0...65535),
            logLevel: try env.logLevel("KANGYI_LOG_LEVEL", default: defaults.logLevel),
            databasePoolSize: try env.int("KANGYI_DB_POOL_SIZE", default: defaults.databasePoolSize, in: 1...500),
            healthProbeInterval: .milliseconds(
                try env.int("KANGYI_HEALTH_PROBE_MS", default: 1000, in: 50...60_000)),
            dataDirectory: try env.string("KANGYI_DATA_DIR", default: defaults.dataDirectory),
            server: ServerLimits(
                maxRequestBytes: try env.int(
                    "KANGYI_MAX_REQUEST_BYTES", default: limits.maxRequestBytes, in: 1024...(64 << 20)),
                maxConcurrentStreams: try env.int(
                    "KANGYI_MAX_CONCURRENT_STREAMS", default: limits.maxConcurrentStreams, in: 1...100_000),
                keepaliveInterval: .seconds(try env.int("KANGYI_KEEPALIVE_S", default: 60, in: 1...86_400)),
                keepaliveTimeout: .seconds(try env.int("KANGYI_KEEPALIVE_TIMEOUT_S", default: 20, in: 1...3_600)),
                connectionMaxAge: .seconds(
                    try env.int("KANGYI_CONNECTION_MAX_AGE_S", default: 300, in: 1...604_800)),
                connectionMaxGrace: .seconds(
                    try env.int("KANGYI_CONNECTION_MAX_GRACE_S", default: 30, in: 0...3_600)),
                maxInFlight: try env.int("KANGYI_MAX_IN_FLIGHT", default: limits.maxInFlight, in: 1...1_000_000)),
            tls: try TLSFiles(certificate: environment["KANGYI_TLS_CERT"], key: environment["KANGYI_TLS_KEY"]),
            peerCallTimeout: .milliseconds(try env.int("KANGYI_PEER_TIMEOUT_MS", default: 2000, in: 10...60_000)),
            backgroundPollInterval: .milliseconds(
                try env.int("KANGYI_BACKGROUND_POLL_MS", default: 1000, in: 10...600_000)),
            identityKey: try env.identityKey("KANGYI_IDENTITY_KEY"),
            shutdownGrace: .seconds(try env.int("KANGYI_SHUTDOWN_GRACE_S", default: 20, in: 1...3_600)))
        self.checkpointRetentionDays = try env.int("KANGYI_CHECKPOINT_RETENTION_DAYS", default: 30, in: 2...3_650)
        self.personalData = try env.personalDataKeys()
        let baseDate = try env.string("KANGYI_PRICEWATCH_BASE_DATE", default: PriceWatchRules.defaults.baseDate)
        guard CalendarDay.parse(baseDate) != nil else {
            throw SettingsError(variable: "KANGYI_PRICEWATCH_BASE_DATE", expected: "a day as YYYY-MM-DD, got \"\(baseDate)\"")
        }
        let jump = try env.string("KANGYI_PRICEWATCH_JUMP_Z", default: "3.5")
        guard let jumpZ = Double(jump), (1...100).contains(jumpZ) else {
            throw SettingsError(variable: "KANGYI_PRICEWATCH_JUMP_Z", expected: "a number from 1 to 100, got \"\(jump)\"")
        }
        self.priceWatch = PriceWatchRules(
            baseDate: baseDate, markupCapPercent: try env.int("KANGYI_PRICEWATCH_MARKUP_CAP_PERCENT", default: 35, in: 0...10_000),
            jumpZ: jumpZ)
        self.tracing = TracingRules(
            followUpDays: try env.int("KANGYI_TRACING_FOLLOW_UP_DAYS", default: 14, in: 1...60),
            lostAfterDays: try env.int("KANGYI_TRACING_LOST_AFTER_DAYS", default: 3, in: 1...30),
            retryAfter: .seconds(60 * (try env.int("KANGYI_TRACING_RETRY_MINUTES", default: 60, in: 1...1_440))))
    }
}

/// PEM files for a TLS server: a certificate chain and its private key.
public struct TLSFiles: Sendable, Equatable {
    public var certificatePath: String
    public var privateKeyPath: String

    public init(certificatePath: String, privateKeyPath: String) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }

    /// Both paths or neither (`KANGYI_TLS_CERT`, `KANGYI_TLS_KEY`).
    init?(certificate: String?, key: String?) throws(SettingsError) {
        switch (certificate.flatMap { $0.isEmpty ? nil : $0 }, key.flatMap { $0.isEmpty ? nil : $0 }) {
        case (nil, nil): return nil
        case (let certificate?, let key?): self.init(certificatePath: certificate, privateKeyPath: key)
        case (nil, _): throw SettingsError(variable: "KANGYI_TLS_CERT", expected: "a PEM certificate path, set with KANGYI_TLS_KEY")
        case (_, nil): throw SettingsError(variable: "KANGYI_TLS_KEY", expected: "a PEM private key path, set with KANGYI_TLS_CERT")
        }
    }
}

/// A start-up error that names the variable and what it expects.
public struct SettingsError: Error, CustomStringConvertible, Equatable {
    public var variable: String
    public var expected: String
    /// Unset, rather than set to something unusable.
    public var missing: Bool
    public var description: String { "\(variable) is \(missing ? "not set" : "not valid"): expected \(expected)" }

    public init(variable: String, expected: String, missing: Bool = false) {
        self.variable = variable
        self.expected = expected
        self.missing = missing
    }
}

/// A PostgreSQL connection URL, split into the parts postgres-nio needs.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String

    public init(host: String, port: Int, user: String, password: String? = nil, database: String) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses `postgres://user[:password]@host[:port]/database` (or `postgresql://`).
    public init?(_ string: String) {
        let schemes = ["postgres://", "postgresql://"]
        guard let scheme = schemes.first(where: { string.hasPrefix($0) }) else { return nil }
        var rest = Substring(string.dropFirst(scheme.count))
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        guard let at = rest.lastIndex(of: "@"), let slash = rest[at...].firstIndex(of: "/") else { return nil }
        let credentials = rest[..<at]
        let hostPort = rest[rest.index(after: at)..<slash]
        let database = rest[rest.index(after: slash)...]
        let userPart = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let user = userPart.first, !user.isEmpty, !database.isEmpty, !hostPort.isEmpty else { return nil }
        let hostParts = hostPort.split(separator: ":", maxSplits: 1)
        let port = hostParts.count == 2 ? Int(hostParts[1]) : 5432
        guard let port, (1...65535).contains(port) else { return nil }
        self.init(
            host: String(hostParts[0]), port: port, user: String(user),
            password: userPart.count == 2 ? String(userPart[1]).removingPercentEncodingIfAny : nil,
            database: String(database))
    }

    /// The URL with its password, for handing to tools and tests; never log it.
    public var string: String {
        let credentials = password.map { "\(user):\($0)" } ?? user
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }

    /// Safe to log: the password is replaced.
    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }

    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }
}

extension String {
    fileprivate var removingPercentEncodingIfAny: String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Typed reads of `KANGYI_*` variables; an empty value counts as unset.
struct EnvironmentReader {
    let environment: [String: String]
    init(_ environment: [String: String]) { self.environment = environment }

    private func raw(_ name: String) -> String? {
        guard let value = environment[name]?.trimmingWhitespace, !value.isEmpty else { return nil }
        return value
    }

    func string(_ name: String, default value: String) throws(SettingsError) -> String {
        raw(name) ?? value
    }

    func optionalInt(_ name: String, in range: ClosedRange<Int>) throws(SettingsError) -> Int? {
        guard let text = raw(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw SettingsError(
                variable: name,
                expected: "an integer from \(range.lowerBound) to \(range.upperBound), got \"\(text)\"")
        }
        return value
    }

    func int(_ name: String, default value: Int, in range: ClosedRange<Int>) throws(SettingsError) -> Int {
        try optionalInt(name, in: range) ?? value
    }

    func logLevel(_ name: String, default value: Logger.Level) throws(SettingsError) -> Logger.Level {
        guard let text = raw(name) else { return value }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw SettingsError(variable: name, expected: "one of \(names), got \"\(text)\"")
        }
        return level
    }

    func identityKey(_ name: String) throws(SettingsError) -> IdentityKey? {
        guard let text = raw(name) else { return nil }
        guard let key = IdentityKey(base64: text) else {
            // A secret: never echoed.
            throw SettingsError(variable: name, expected: "base64 of at least 32 random bytes (openssl rand -base64 32)")
        }
        return key
    }

    /// The personal-data keys, or nil when `KANGYI_PII_KEY` is unset. Secrets: never echoed.
    func personalDataKeys() throws(SettingsError) -> PersonalDataKeys? {
        let sealing = "base64 of exactly 32 random bytes (openssl rand -base64 32)"
        guard let text = raw("KANGYI_PII_KEY") else { return nil }
        guard let current = PersonalDataKeys.SealingKey(base64: text) else {
            throw SettingsError(variable: "KANGYI_PII_KEY", expected: sealing)
        }
        var retired: [PersonalDataKeys.SealingKey] = []
        for part in (raw("KANGYI_PII_RETIRED_KEYS") ?? "").split(separator: ",") {
            guard let key = PersonalDataKeys.SealingKey(base64: String(part)) else {
                throw SettingsError(variable: "KANGYI_PII_RETIRED_KEYS", expected: "comma-separated keys, each \(sealing)")
            }
            retired.append(key)
        }
        let indexExpected = "base64 of at least 32 random bytes, set with KANGYI_PII_KEY"
        guard let index = raw("KANGYI_PII_INDEX_KEY") else {
            throw SettingsError(variable: "KANGYI_PII_INDEX_KEY", expected: indexExpected, missing: true)
        }
        do {
            return try PersonalDataKeys(current: current, retired: retired, indexKeyBase64: index)
        } catch {
            throw SettingsError(variable: "KANGYI_PII_INDEX_KEY", expected: indexExpected)
        }
    }

    func databaseURL(_ name: String) throws(SettingsError) -> DatabaseURL? {
        guard let text = raw(name) else { return nil }
        guard let url = DatabaseURL(text) else {
            // The value may hold a password: describe the shape, never echo it.
            throw SettingsError(variable: name, expected: "postgres://user[:password]@host[:port]/database")
        }
        return url
    }
}

extension String {
    var trimmingWhitespace: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
