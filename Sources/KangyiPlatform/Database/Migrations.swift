import Logging
import PostgresNIO

/// One versioned step of a schema. Steps of a schema run in `version` order, each in its own transaction,
/// and are recorded in `public.kangyi_schema_migrations`; a recorded step never runs again, and a recorded
/// step whose SQL has since changed stops start-up (edit by adding a step, never by rewriting one).
public struct Migration: Sendable {
    public var schema: String
    public var version: Int
    public var name: String
    /// Statements run in order inside one transaction (postgres-nio runs one statement per query).
    public var statements: [String]

    public init(schema: String, version: Int, name: String, statements: [String]) {
        self.schema = schema
        self.version = version
        self.name = name
        self.statements = statements
    }

    /// A stable fingerprint of the SQL (FNV-1a, 64 bits), to notice a step rewritten after it ran.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in statements.joined(separator: "\u{1E}").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Applies migrations. Safe when several replicas start at once: the whole run holds a PostgreSQL advisory
/// lock, so one replica migrates while the others wait and then find nothing left to do.
///
/// Run as an owner role (a superuser, or a role with CREATEROLE) it then settles the service roles
/// (``DatabaseRoles``). Run as a service's own role — a server in production — it only confirms that
/// nothing is pending: that role may not migrate, and says which command does.
public struct MigrationRunner: Sendable {
    /// Arbitrary but fixed: the advisory-lock key all Kangyi processes agree on.
    static let lockKey: Int64 = 0x4B41_4E47_5949  // "KANGYI"

    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    /// Applies every pending step of `migrations` (any order; sorted by schema dependency as given, then
    /// version). Returns the steps applied by this call.
    ///
    /// Waits for a database that cannot be reached or cannot work yet (refused connections, starting up,
    /// too many connections: ``DatabaseErrorKind/unavailable``), trying again after 0.25 s, doubling up to
    /// `longestPause`, with a warning each time. A process started before its database — a city's cluster
    /// coming back after a power cut — then serves within a pause of the database's return, where exiting
    /// put it in Kubernetes' crash-loop back-off (up to 5 minutes). Safe to repeat: each step is applied
    /// in its own transaction and recorded in it. Any other failure ends the wait, named without values.
    @discardableResult
    public func apply(_ migrations: [Migration], url: DatabaseURL, longestPause: Duration = .seconds(2)) async throws
        -> [Migration]
    {
        var (pause, attempt): (Duration, Int) = (.milliseconds(250), 0)
        while true {
            attempt += 1
            do {
                let connection = try await Database.connect(url: url, logger: logger)
                do {
                    let applied = try await apply(migrations, on: connection)
                    try await connection.close()
                    return applied
                } catch {
                    try? await connection.close()
                    throw error
                }
            } catch where DatabaseErrorKind(error) == .unavailable {
                logger.warning(
                    "the database cannot be reached yet; waiting for it",
                    metadata: [
                        "database": "\(url)", "attempt": "\(attempt)", "retry_in_s": "\(pause.inSeconds)",
                        "error": "\(DatabaseErrorKind.redactedDescription(of: error))",
                    ])
                try await Task.sleep(for: pause)
                pause = min(pause * 2, longestPause)
            } catch let error as PSQLError {
                // postgres-nio's own description says nothing ("Generic description to prevent accidental
                // leakage"); this one names the SQLSTATE without values.
                throw PlatformError(
                    description: "the database \(url) refused: \(DatabaseErrorKind.redactedDescription(of: error))")
            }
        }
    }

    public func apply(_ migrations: [Migration], on connection: PostgresConnection) async throws -> [Migration] {
        try validate(migrations)
        try await connection.queryWhenOpen("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
        do {
            let applied = try await applyLocked(migrations, on: connection)
            try await connection.queryWhenOpen("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
            return applied
        } catch {
            _ = try? await connection.queryWhenOpen("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
            throw error
        }
    }

    private func validate(_ migrations: [Migration]) throws {
        var seen = Set<String>()
        for migration in migrations {
            guard seen.insert("\(migration.schema)/\(migration.version)").inserted else {
                throw PlatformError(description: "migration \(migration.schema) v\(migration.version) is defined twice")
            }
        }
    }

    private func applyLocked(_ migrations: [Migration], on connection: PostgresConnection) async throws -> [Migration] {
        let standing = try await DatabaseRoles.standing(on: connection, logger: logger)
        // Checked first: CREATE TABLE IF NOT EXISTS needs CREATE on public even when the table exists,
        // and a service's role has none.
        if try await !connection.flag("SELECT to_regclass('public.kangyi_schema_migrations') IS NOT NULL", logger: logger) {
            try await connection.queryWhenOpen(
                """
                CREATE TABLE IF NOT EXISTS public.kangyi_schema_migrations (
                    schema_name text NOT NULL,
                    version integer NOT NULL,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (schema_name, version))
                """, logger: logger)
        }
        var recorded: [String: String] = [:]
        let rows = try await connection.queryWhenOpen(
            "SELECT schema_name, version, checksum FROM public.kangyi_schema_migrations", logger: logger)
        for try await (schema, version, checksum) in rows.decode((String, Int, String).self) {
            recorded["\(schema)/\(version)"] = checksum
        }

        var applied: [Migration] = []
        // Schemas keep the order they were given in (common first); versions ascend within each.
        var order: [String] = []
        for migration in migrations where !order.contains(migration.schema) { order.append(migration.schema) }
        let sorted = migrations.sorted {
            let (a, b) = (order.firstIndex(of: $0.schema)!, order.firstIndex(of: $1.schema)!)
            return a != b ? a < b : $0.version < $1.version
        }
        for migration in sorted {
            let key = "\(migration.schema)/\(migration.version)"
            if let checksum = recorded[key] {
                guard checksum == migration.checksum else {
                    throw PlatformError(
                        description: "migration \(key) (\(migration.name)) changed after it was applied; add a new step instead")
                }
                continue
            }
            if case .service(let schema) = standing {
                throw PlatformError(
                    description: "migration \(key) (\(migration.name)) is pending, and this process connects as "
                        + "\(DatabaseRoles.role(of: schema)), which may not migrate: run `kangyi migrate` as the owner role first")
            }
            try await connection.withTransaction(logger: logger) { connection in
                for statement in migration.statements {
                    try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.queryWhenOpen(
                    """
                    INSERT INTO public.kangyi_schema_migrations (schema_name, version, name, checksum)
                    VALUES (\(migration.schema), \(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: logger)
            }
            logger.info("applied migration", metadata: ["schema": "\(migration.schema)", "version": "\(migration.version)", "name": "\(migration.name)"])
            applied.append(migration)
        }
        switch standing {
        case .owner(let superuser):
            try await DatabaseRoles.settle(schemas: order, superuser: superuser, on: connection, logger: logger)
        case .service:
            break
        case .other(let role):
            logger.warning(
                "connected as a role that can neither create roles nor is a service's own: service roles not settled",
                metadata: ["role": "\(role)"])
        }
        return applied
    }

}
