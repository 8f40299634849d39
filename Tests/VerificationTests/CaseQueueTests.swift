import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Testing

@testable import KangyiVerification

/// The queue on real PostgreSQL: priority order, leases, and no double claim under concurrency.
@Suite struct CaseQueueTests {
    @Test func concurrentClaimersNeverShareACase() async throws {
        try await VerificationHarness.run("queue_concurrent") { h in
            var ids: Set<UUID> = []
            for _ in 0..<40 { ids.insert(try await h.newCase()) }
            let claimers = 8
            // Each claimer claims, then verifies (which ends its claim), until the queue is empty.
            let claimedPerStaff = try await withThrowingTaskGroup(of: [UUID].self) { group in
                for n in 0..<claimers {
                    group.addTask {
                        var mine: [UUID] = []
                        while true {
                            let claimed = try await asStaff("staff-\(n)") {
                                try await h.service.claimNext(request: .init(), context: .testing)
                            }
                            guard claimed.hasCase else { break }
                            let id = try unwrap(UUID(uuidString: claimed.case.id))
                            #expect(claimed.case.claim.claimedBy == "staff-\(n)")
                            mine.append(id)
                            _ = try await asStaff("staff-\(n)") {
                                try await h.service.verify(
                                    request: .with {
                                        $0.caseID = claimed.case.id
                                        $0.requestID = "verify-\(claimed.case.id)"
                                    }, context: .testing)
                            }
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [[UUID]]()) { $0.append($1) }
            }
            let all = claimedPerStaff.flatMap { $0 }
            #expect(all.count == ids.count, "every case claimed exactly once")
            #expect(Set(all) == ids)
            let claimEvents = try await h.scalar("SELECT count(*)::int FROM verification.events WHERE action = 'claim'")
            #expect(claimEvents == ids.count)
        }
    }

    @Test func greenChannelThenPriorityThenAge() async throws {
        try await VerificationHarness.run("queue_order") { h in
            let routine = try await h.newCase(urgency: .routine)
            let critical = try await h.newCase(urgency: .critical)
            let green = try await h.newCase(urgency: .routine, groups: [.pregnant])
            var order: [UUID] = []
            for n in 0..<3 {
                let claimed = try await asStaff("s\(n)") { try await h.service.claimNext(request: .init(), context: .testing) }
                order.append(try unwrap(UUID(uuidString: claimed.case.id)))
            }
            #expect(order == [green, critical, routine])
        }
    }

    @Test func leasesExpireRenewAndRelease() async throws {
        try await VerificationHarness.run("queue_lease") { h in
            let id = try await h.newCase()
            // Long enough that a busy machine does not let it lapse between Alice's two claims.
            let short = Kangyi_Verification_V1_ClaimNextRequest.with { $0.lease = .init(seconds: 4) }
            let first = try await asStaff("alice") { try await h.service.claimNext(request: short, context: .testing) }
            #expect(first.case.id == id.uuidString.lowercased())
            // Bob finds nothing while Alice holds it; Alice asking again gets the same case back.
            let bob = try await asStaff("bob") { try await h.service.claimNext(request: short, context: .testing) }
            #expect(!bob.hasCase)
            let again = try await asStaff("alice") { try await h.service.claimNext(request: short, context: .testing) }
            #expect(again.case.id == first.case.id)
            // Bob may not act on Alice's case.
            let refused = await #expect(throws: ServiceError.self) {
                try await asStaff("bob") {
                    try await h.service.reject(
                        request: .with {
                            $0.caseID = id.uuidString
                            $0.requestID = "r"
                            $0.reason = "spam"
                        }, context: .testing)
                }
            }
            #expect(refused?.reason == "CLAIMED_BY_ANOTHER")
            // After the lease runs out, Bob gets it.
            try await Task.sleep(for: .milliseconds(4200))
            let later = try await asStaff("bob") { try await h.service.claimNext(request: short, context: .testing) }
            #expect(later.case.claim.claimedBy == "bob")
            // Released, it is free for Alice again.
            _ = try await asStaff("bob") {
                try await h.service.releaseClaim(request: .with { $0.caseID = id.uuidString }, context: .testing)
            }
            let back = try await asStaff("alice") { try await h.service.claimNext(request: .init(), context: .testing) }
            #expect(back.case.claim.claimedBy == "alice")
            let notMine = await #expect(throws: ServiceError.self) {
                try await asStaff("bob") {
                    try await h.service.releaseClaim(request: .with { $0.caseID = id.uuidString }, context: .testing)
                }
            }
            #expect(notMine?.reason == "NOT_CLAIMED_BY_CALLER")
        }
    }

    @Test func filtersAndStages() async throws {
        try await VerificationHarness.run("queue_filters") { h in
            _ = try await h.newCase(category: "food_supply", district: "410102")
            let medical = try await h.newCase(category: "medical", district: "410103")
            let byCategory = try await asStaff("a") {
                try await h.service.claimNext(request: .with { $0.category = "medical" }, context: .testing)
            }
            #expect(byCategory.case.id == medical.uuidString.lowercased())
            let elsewhere = try await asStaff("b") {
                try await h.service.claimNext(request: .with { $0.district = "410185" }, context: .testing)
            }
            #expect(!elsewhere.hasCase)
            let resolvedStage = try await asStaff("c") {
                try await h.service.claimNext(request: .with { $0.states = [.resolved] }, context: .testing)
            }
            #expect(!resolvedStage.hasCase)
            let bad = await #expect(throws: ServiceError.self) {
                try await asStaff("d") {
                    try await h.service.claimNext(
                        request: .with {
                            $0.category = "nope"
                            $0.lease = .init(seconds: 7200)
                        }, context: .testing)
                }
            }
            #expect(Set(bad?.violations.map(\.field) ?? []) == ["category", "lease"])
        }
    }
}
