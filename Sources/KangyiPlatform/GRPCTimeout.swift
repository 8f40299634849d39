import GRPCCore

/// gRPC's `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
public enum GRPCTimeout {
    /// When the call being served must be answered by, from its `grpc-timeout` (set for the whole RPC by
    /// ``RequestContextInterceptor``); nil when the caller set no deadline.
    @TaskLocal public static var deadline: ContinuousClock.Instant?

    /// What remains of ``deadline`` now (never negative); nil without one.
    public static var remaining: Duration? {
        deadline.map { max(.zero, $0 - ContinuousClock.now) }
    }

    public static func decode(_ value: String?) -> Duration? {
        guard let value, value.count >= 2, value.count <= 9, let amount = Int64(value.dropLast()), amount >= 0 else { return nil }
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
