@testable import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Testing

/// What a PostgreSQL error tells the caller: the server's own errors, raised for real. A database that
/// cannot work now (a full disk: Tests/Faults/test_disk_full.py) is UNAVAILABLE, not a bug to report, and
/// not an item's fault that a batch would reject for good.
@Suite struct DatabaseErrorKindTests {
    /// `elsewhere` runs first on another session of the same database, which keeps its transaction open.
    static let cases: [(label: String, elsewhere: [String], setup: [String], statement: String, kind: DatabaseErrorKind)] = [
        ("a cancelled statement (57014)", [], [], "SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(5)", .unavailable),
        ("a write in a read-only transaction, as on a standby (25006)", [],
         ["CREATE TABLE t (n int)", "BEGIN READ ONLY"], "INSERT INTO t VALUES (1)", .unavailable),
        ("a lock not granted within lock_timeout (55P03)",
         ["CREATE TABLE t (n int)", "BEGIN", "LOCK TABLE t"], ["BEGIN", "SET LOCAL lock_timeout = '50ms'"], "LOCK TABLE t", .conflict),
        ("a limit one statement exceeds (53400)", [],
         ["SET temp_file_limit = '64kB'", "SET work_mem = '64kB'"],
         "SELECT g FROM generate_series(1, 200000) g ORDER BY random()", .other),
        ("a constraint (23505)", [],
         ["CREATE TABLE t (n int CONSTRAINT t_n UNIQUE)", "INSERT INTO t VALUES (1)"], "INSERT INTO t VALUES (1)",
         .uniqueViolation(constraint: "t_n")),
        ("a bug (42703)", [], [], "SELECT no_such_column FROM pg_class", .other),
    ]

    @Test(arguments: cases.indices)
    func theServersErrorsAreClassified(index: Int) async throws {
        let test = Self.cases[index]
        let url = try await TestDatabase.fresh("error-kind")
        let kind = try await withDatabasePool(url, poolSize: 2) { pool in
            try await pool.withConnection { other in
                for statement in test.elsewhere {
                    _ = try await other.queryWhenOpen(PostgresQuery(unsafeSQL: statement), logger: TestDatabase.logger)
                }
                return try await pool.withConnection { connection in
                    for statement in test.setup {
                        _ = try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: statement), logger: TestDatabase.logger)
                    }
                    return try await Self.kind(of: test.statement, on: connection)
                }
            }
        }
        #expect(kind == test.kind, "\(test.label)")
    }

    static func kind(of statement: String, on connection: PostgresConnection) async throws -> DatabaseErrorKind? {
        do {
            _ = try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: statement), logger: TestDatabase.logger).collect()
            Issue.record("\(statement) did not fail")
            return nil
        } catch {
            return DatabaseErrorKind(error)
        }
    }

    @Test func whatCannotWorkNowIsTheDatabasesStateNotTheCall() {
        for state in ["08006", "53100", "53200", "53300", "57P01", "57014", "58030", "25006"] {
            #expect(DatabaseErrorKind.cannotWorkNow(state), "\(state)")
        }
        for state in ["53400", "23505", "42703", "XX000", "22001", "25P02"] {
            #expect(!DatabaseErrorKind.cannotWorkNow(state), "\(state)")
        }
    }
}
