import GRPCCore

/// gRPC's `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
public enum GRPCTimeout {
    /// When the call being served must be answered by, from its `grpc-timeout` (set for the whole RPC by
    /// ``RequestContextInterceptor``); nil when the caller set no deadline.
    @TaskLocal public static var deadline: ContinuousClock.Instant?

    /// Where a platform server's ``RequestHeaderGuard`` moves a call's `grpc-timeout`, so that grpc-swift
    /// does not see it: grpc-swift times every call that has one with a task of its own sleeping on a
    /// timer of Swift's runtime — a child task per call, and a timer that still fires on another thread
    /// long after the call ended (it cannot be cancelled). That was a seventh of intake's rate under 32
    /// callers. ``RequestContextInterceptor`` ends the call at the same deadline with a timer on the
    /// call's event loop instead (``ServerDeadline``). Only the guard writes it: it drops a caller's own.
    public static let receivedKey = "kangyi-grpc-timeout"

    /// What remains of ``deadline`` now (never negative); nil without one.
    public static var remaining: Duration? {
        deadline.map { max(.zero, $0 - ContinuousClock.now) }
    }

    /// One to eight ASCII digits and a unit, as the protocol writes it (no sign, no space).
    public static func isWellFormed(_ value: String) -> Bool {
        let bytes = value.utf8
        guard (2...9).contains(bytes.count), let unit = bytes.last, "HMSmun".utf8.contains(unit) else { return false }
        return bytes.dropLast().allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    public static func decode(_ value: String?) -> Duration? {
        guard let value, isWellFormed(value), let amount = Int64(value.dropLast()) else { return nil }
        switch value.last {
        case "H": return .seconds(amount * 3600)
        case "M": return .seconds(amount * 60)
        case "S": return .seconds(amount)
        case "m": return .milliseconds(amount)
        case "u": return .microseconds(amount)
        case "n": return .nanoseconds(amount)
        default: return nil
        }
    }
}
