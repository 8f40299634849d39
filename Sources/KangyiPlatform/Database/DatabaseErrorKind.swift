import PostgresNIO

/// What a PostgreSQL error means for the caller, and a description that is safe to log: server messages
/// can quote the values of a row (phone numbers included), so only the SQLSTATE, the constraint and the
/// table are kept.
public enum DatabaseErrorKind: Sendable, Equatable {
    /// The database cannot be reached, is shutting down or cannot work now (``cannotWorkNow(_:)``):
    /// retryable, UNAVAILABLE.
    case unavailable
    /// A serialization failure, deadlock or lock timeout: retryable, ABORTED.
    case conflict
    /// A unique constraint was violated; the payload is the constraint's name.
    case uniqueViolation(constraint: String)
    /// Anything else: a bug or a schema mismatch, INTERNAL.
    case other

    public init?(_ error: any Error) {
        if let transaction = error as? PostgresTransactionError {
            guard let inner = transaction.closureError ?? transaction.commitError ?? transaction.beginError,
                let kind = DatabaseErrorKind(inner)
            else { return nil }
            self = kind
            return
        }
        // postgres-nio's older error, still thrown by some paths (a COPY's writer) on a closed connection.
        if case .connectionClosed? = error as? PostgresError {
            self = .unavailable
            return
        }
        guard let error = error as? PSQLError else { return nil }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown,
            .sslUnsupported, .failedToAddSSLHandler:
            self = .unavailable
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            switch state {
            case "23505": self = .uniqueViolation(constraint: error.serverInfo?[.constraintName] ?? "")
            // Serialization failure, deadlock, a lock not granted in time (an operator's lock_timeout).
            case "40001", "40P01", "55P03": self = .conflict
            case _ where Self.cannotWorkNow(state): self = .unavailable
            default: self = .other
            }
        default:
            self = .other
        }
    }

    /// The database cannot do anyone's work now and may later, whatever was asked: 08 connection exception;
    /// 25006 read-only (a standby after a failover); 53 insufficient resources — a full disk, memory,
    /// connections — but not 53400, a limit one statement exceeds; 57 operator intervention (a shutdown, a
    /// cancelled statement); 58 system error (I/O). Not the caller's fault nor a bug: a full disk answered
    /// INTERNAL told callers to report it, and made checkpoint reject a terminal's logs for good.
    static func cannotWorkNow(_ state: String) -> Bool {
        switch state.prefix(2) {
        case "08", "57", "58": true
        case "53": state != "53400"
        default: state == "25006"
        }
    }

    /// A one-line description without values: code, SQLSTATE, table, constraint.
    public static func redactedDescription(of error: any Error) -> String {
        if let transaction = error as? PostgresTransactionError {
            let inner = transaction.closureError ?? transaction.commitError ?? transaction.beginError
            return "transaction failed: " + (inner.map(redactedDescription(of:)) ?? "unknown")
        }
        guard let error = error as? PSQLError else { return String(describing: type(of: error)) }
        var parts = ["postgres \(error.code)"]
        // Why a connection failed (refused, timed out, unreachable): the socket's error, which carries no row.
        if error.code == .connectionError, let underlying = error.underlying { parts.append("(\(underlying))") }
        if let info = error.serverInfo {
            for (label, field) in [("sqlstate", PSQLError.ServerInfo.Field.sqlState), ("table", .tableName),
                                   ("constraint", .constraintName), ("routine", .routine)] {
                if let value = info[field] { parts.append("\(label)=\(value)") }
            }
        }
        return parts.joined(separator: " ")
    }
}
