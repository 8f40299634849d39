/// Cursors of feeds whose rows commit in sequence order (a sweeper that records under an advisory lock:
/// verification's escalations, tracing's overdue tasks): "<prefix>:<seq>", opaque to callers. Feeds
/// written by concurrent transactions use ``FeedCursor`` instead.
public struct SequenceCursor: Sendable {
    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    public func token(_ seq: Int64) -> String { "\(prefix):\(seq)" }

    /// The sequence a request's cursor names, or INVALID_ARGUMENT naming `field`.
    public func seq(_ token: String, field: String = "cursor") throws -> Int64 {
        guard token.hasPrefix(prefix + ":"), let seq = Int64(token.dropFirst(prefix.count + 1)), seq >= 0 else {
            throw ServiceError.invalidArgument(field: field, reason: "INVALID_CURSOR", "not a cursor this service issued")
        }
        return seq
    }
}
