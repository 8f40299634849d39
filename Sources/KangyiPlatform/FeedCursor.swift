import Foundation

/// Where a watcher is in a change feed (intake's help requests, checkpoint's flagged vehicles): rows are
/// stamped with their transaction id and a sequence number, and a feed hands out only rows whose
/// transaction is older than every one still running, in (xid, seq) order — so a row that commits late
/// never lands behind a cursor already handed out. The token is opaque to callers.
public struct FeedCursor: Sendable, Equatable {
    public var xid: UInt64
    public var seq: Int64

    public static let start = FeedCursor(xid: 0, seq: 0)

    public var token: String { Data("v1:\(xid):\(seq)".utf8).base64EncodedString() }

    public init(xid: UInt64, seq: Int64) {
        self.xid = xid
        self.seq = seq
    }

    public init?(token: String) {
        if token.isEmpty { self = .start; return }
        guard let data = Data(base64Encoded: token) else { return nil }
        let parts = String(decoding: data, as: UTF8.self).split(separator: ":")
        guard parts.count == 3, parts[0] == "v1", let xid = UInt64(parts[1]), let seq = Int64(parts[2]) else { return nil }
        self.init(xid: xid, seq: seq)
    }
}
