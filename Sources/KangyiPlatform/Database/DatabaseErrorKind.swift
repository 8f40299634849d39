import PostgresNIO

/// What a PostgreSQL error means for the caller, and a description that is safe to log: server messages
/// can quote the values of a row (phone numbers included), so only the SQLSTATE, the constraint and the
/// table are kept.
public enum DatabaseErrorKind: Sendable, Equatable {
    /// The database cannot be reached or is shutting down: retryable, UNAVAILABLE.
    case unavailable
    /// A serialization failure or deadlock: retryable, ABORTED.
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
            case "40001", "40P01": self = .conflict
            // 08: connection exception; 57P0x: shutdown / cannot connect now; 53300: too many connections.
            case _ where state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300": self = .unavailable
            default: self = .other
            }
        default:
            self = .other
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
        if let info = error.serverInfo {
            for (label, field) in [("sqlstate", PSQLError.ServerInfo.Field.sqlState), ("table", .tableName),
                                   ("constraint", .constraintName), ("routine", .routine)] {
                if let value = info[field] { parts.append("\(label)=\(value)") }
            }
        }
        return parts.joined(separator: " ")
    }
}
