import GRPCCore
import ServiceLifecycle

/// Serves a server-streaming watch (intake's help requests, verification's escalations, checkpoint's
/// flagged vehicles): reads the feed after `cursor` a batch at a time and writes each row with its
/// position, polling every `idle` once caught up, until the caller goes away or the server shuts down.
public func followFeed<Row: Sendable, Cursor: Sendable>(
    from cursor: Cursor, context: ServerContext, batch: Int = 500, idle: Duration = .milliseconds(200),
    next: (_ after: Cursor, _ limit: Int) async throws -> [(row: Row, cursor: Cursor)],
    write: (_ row: Row, _ cursor: Cursor) async throws -> Void
) async throws {
    var cursor = cursor
    while !context.cancellation.isCancelled && !Task.isShuttingDownGracefully {
        let rows = try await next(cursor, batch)
        for (row, position) in rows {
            try await write(row, position)
            cursor = position
        }
        if rows.count < batch { try? await Task.sleep(for: idle) }
    }
}

extension FeedCursor {
    /// The cursor a watch request carries (empty: the start), or INVALID_ARGUMENT naming `field`.
    public static func parse(_ token: String, field: String = "cursor") throws -> FeedCursor {
        guard let cursor = FeedCursor(token: token) else {
            throw ServiceError.invalidArgument(field: field, reason: "INVALID_CURSOR", "not a cursor this service issued")
        }
        return cursor
    }
}
