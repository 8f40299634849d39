import Logging
import PostgresNIO

/// Least privilege in the database: each service connects as its own role, `kangyi_<schema>`, which owns
/// its schema and everything in it (so it may create its own partitions) and may read and reference
/// `common`; it has no way into another service's schema — tracing's personal data least of all.
///
/// Migrations run as an owner role: a superuser in development (`kangyi dev`, tests), the database's
/// owner with CREATEROLE under CloudNativePG. After migrating, that role *settles* the service roles:
/// creates any that are missing (NOLOGIN — logins and passwords are the platform's to give, e.g.
/// CloudNativePG's managed roles), becomes a member of each (so later migrations may still alter what it
/// handed over), and gives each schema and every object in it to its role. It runs on every migration,
/// so a database migrated before roles existed is brought in line too.
public enum DatabaseRoles {
    /// The role a service connects as, by the schema it owns.
    public static func role(of schema: String) -> String { "kangyi_\(schema)" }

    /// What the connected role may do about roles.
    public enum Standing: Sendable, Equatable {
        /// A superuser or a role with CREATEROLE: it settles the service roles.
        case owner(superuser: Bool)
        /// One of the service roles: it may touch only its own schema.
        case service(schema: String)
        /// Anything else: it can neither settle roles nor is it one.
        case other(role: String)
    }

    public static func standing(on connection: PostgresConnection, logger: Logger) async throws -> Standing {
        let rows = try await connection.queryWhenOpen(
            "SELECT current_user::text, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user",
            logger: logger)
        for try await (name, superuser, createrole) in rows.decode((String, Bool, Bool).self) {
            if superuser || createrole { return .owner(superuser: superuser) }
            if name.hasPrefix("kangyi_") { return .service(schema: String(name.dropFirst("kangyi_".count))) }
            return .other(role: name)
        }
        throw PlatformError(description: "the connected role is not in pg_roles")
    }

    /// Creates, grants and hands over, as described above; idempotent, and safe beside other databases of
    /// the same cluster doing the same (roles are cluster-wide; a concurrent creation is not an error).
    public static func settle(schemas: [String], superuser: Bool, on connection: PostgresConnection, logger: Logger) async throws {
        let common = try await connection.flag("SELECT to_regnamespace('common') IS NOT NULL", logger: logger)
        for schema in schemas where schema != "common" {
            let role = role(of: schema)
            try await connection.queryWhenOpen(
                PostgresQuery(unsafeSQL: """
                    DO $$ BEGIN
                        CREATE ROLE \(role) NOLOGIN;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END $$
                    """), logger: logger)
            if !superuser {
                // PostgreSQL 15 gives a CREATEROLE role no membership in what it creates; ownership moves
                // only to roles one belongs to.
                try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: "GRANT \(role) TO CURRENT_USER"), logger: logger)
            }
            for statement in try await handOver(schema: schema, to: role, on: connection, logger: logger) {
                try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let commonGrants = [
                "GRANT USAGE ON SCHEMA common TO \(role)",
                "GRANT SELECT, REFERENCES ON ALL TABLES IN SCHEMA common TO \(role)",
            ]
            // The last one so a server connected as its role can see that its schema is up to date.
            for statement in (common ? commonGrants : []) + ["GRANT SELECT ON public.kangyi_schema_migrations TO \(role)"] {
                try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
        logger.info("service roles settled", metadata: ["roles": "\(schemas.filter { $0 != "common" }.map(role(of:)))"])
    }

    /// The ALTER ... OWNER statements that give `schema` and its objects to `role`. Indexes and a table's
    /// own sequences follow their table; partitions are tables of their own and are listed.
    static func handOver(schema: String, to role: String, on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let rows = try await connection.queryWhenOpen(
            """
            SELECT 'ALTER SCHEMA ' || quote_ident(n.nspname) || ' OWNER TO ' || \(role)
            FROM pg_namespace n WHERE n.nspname = \(schema) AND n.nspowner <> to_regrole(\(role))
            UNION ALL
            SELECT 'ALTER ' || CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                              WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END
                   || ' ' || c.oid::regclass::text || ' OWNER TO ' || \(role)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = \(schema) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND c.relowner <> to_regrole(\(role))
              AND NOT (c.relkind = 'S' AND EXISTS (
                  SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
            UNION ALL
            SELECT 'ALTER ROUTINE ' || p.oid::regprocedure::text || ' OWNER TO ' || \(role)
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = \(schema) AND p.proowner <> to_regrole(\(role))
            UNION ALL
            SELECT 'ALTER TYPE ' || t.oid::regtype::text || ' OWNER TO ' || \(role)
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = \(schema) AND t.typowner <> to_regrole(\(role))
              AND t.typtype IN ('e', 'd', 'r', 'm') AND t.typelem = 0
            """, logger: logger)
        var statements: [String] = []
        for try await statement in rows.decode(String.self) { statements.append(statement) }
        return statements
    }

}
