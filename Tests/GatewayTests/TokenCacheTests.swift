import Foundation
import Testing

@testable import KangyiGateway

/// The gateway's token cache against made-up tokens: a token of the wrong shape is never looked up, and a
/// flood of unknown ones does not push out the callers the gateway knows.
@Suite struct TokenCacheTests {
    @Test func onlyTheShapeEveryTokenHasIsLookedUp() {
        #expect(TokenStore.isWellFormed(TokenStore.mint()))
        for made in ["kyt_madeup", "kyt_" + String(repeating: "A", count: 42), "kyt_" + String(repeating: "A", count: 44),
                     "kyt_" + String(repeating: "A", count: 42) + "=", "kyt_" + String(repeating: "A", count: 42) + "+",
                     "kyu_" + String(repeating: "A", count: 43), "kyt_" + String(repeating: "请", count: 14) + "A"] {
            #expect(!TokenStore.isWellFormed(made), "\(made)")
        }
    }

    @Test func aFloodOfUnknownTokensDoesNotPushOutAKnownOne() {
        let cache = TokenStore.Cache(limit: 100)
        let holder = TokenHolder(
            id: UUID(), caller: "dept", department: "health", scopes: [], ratePerSecond: 10, burst: 10, expiresAt: nil,
            revokedAt: nil, createdAt: Date())
        cache.put("known", holder)
        for _ in 0..<1_000 { cache.put(TokenStore.mint(), nil) }
        #expect(cache.get("known") == .some(holder))
    }
}
