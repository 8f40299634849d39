import Foundation
import Synchronization

/// A token bucket per caller token: `burst` calls at once, refilled at `ratePerSecond`. In memory, per
/// gateway replica (with N replicas a caller gets up to N times its rate; the limit protects the
/// backends from one runaway caller, it is not billing).
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let buckets = Mutex<[UUID: Bucket]>([:])

    /// Takes one call from the holder's bucket: nil if allowed, else how long until one is available.
    func take(_ holder: TokenHolder, now: ContinuousClock.Instant = .now) -> Duration? {
        buckets.withLock { buckets in
            var bucket = buckets[holder.id] ?? Bucket(tokens: Double(holder.burst), updated: now)
            bucket.tokens = min(Double(holder.burst), bucket.tokens + (now - bucket.updated).inSeconds * holder.ratePerSecond)
            bucket.updated = now
            defer { buckets[holder.id] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            let wait = (1 - bucket.tokens) / holder.ratePerSecond
            return .milliseconds(Int64((wait * 1000).rounded(.up)))
        }
    }
}
