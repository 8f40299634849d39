import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import SwiftProtobuf
import Testing

@testable import KangyiVerification

/// New submissions arriving from intake's stream; service-level timers, escalations and statistics.
@Suite struct FeedAndServiceLevelTests {
    @Test func theFeedFollowerLosesNothingAcrossARestart() async throws {
        try await VerificationHarness.run("feed_restart") { h in
            try await h.withIntakeServer {
                let follower = IntakeFeedFollower(
                    store: h.store, intake: h.intakeClient, retryDelay: .milliseconds(100), logger: TestDatabase.logger)
                let casesCount = "SELECT count(*)::int FROM verification.cases"
                var submitted: [String] = []
                for _ in 0..<3 { submitted.append(try await h.submitToIntake().id) }
                try await withServiceGroup([follower]) { _ in
                    try await waitUntil { try await h.scalar(casesCount) == 3 }
                }
                // Submitted while the follower is stopped, including a repeat of the first (same phone and
                // category), which raises the first one's priority in intake.
                let phone = "13700000001"
                let original = try await h.submitToIntake(phone: phone)
                let repeated = try await h.submitToIntake(phone: phone)
                #expect(repeated.repeatOf == original.id)
                submitted += [original.id, repeated.id]
                try await withServiceGroup([follower]) { _ in
                    try await waitUntil {
                        let count = try await h.scalar(casesCount)
                        let priority = try await h.scalar("SELECT priority FROM verification.cases WHERE id = '\(original.id)'")
                        return count == 5 && priority == Int(original.priority) + 5
                    }
                }
                let stored = try await h.scalar("SELECT string_agg(id::text, ',' ORDER BY submitted_at) FROM verification.cases", as: String.self)
                #expect(stored == submitted.joined(separator: ","))
                #expect(try await h.scalar("SELECT repeat_of::text FROM verification.cases WHERE id = '\(repeated.id)'", as: String.self) == original.id)
                #expect(try await h.store.intakeFeedCursor() != "")
            }
        }
    }

    @Test func breachesAreEscalatedOnceAndStreamed() async throws {
        try await VerificationHarness.run("escalations") { h in
            try await h.client.query("UPDATE verification.service_levels SET verify_within = interval '1 millisecond'", logger: TestDatabase.logger)
            let late = try await h.newCase()
            #expect(try await h.store.sweepBreaches() == 1)
            #expect(try await h.store.sweepBreaches() == 0, "a breach is escalated once")
            let breached = try await h.service.listCases(request: .with { $0.breachedOnly = true }, context: .testing)
            #expect(breached.cases.map(\.id) == [late.uuidString.lowercased()])
            #expect(breached.cases.first?.breached == true)

            let server = GRPCServerService(
                name: "verification", services: [h.service], host: "127.0.0.1", port: 0, limits: .defaults,
                metrics: RPCMetrics(), logger: TestDatabase.logger)
            try await withServiceGroup([server]) { _ in
                let address = try await server.listeningAddress()
                try await withClient(address) { grpc in
                    let client = Kangyi_Verification_V1_VerificationService.Client(wrapping: grpc)
                    // The open breach first, then a new one as the sweeper records it.
                    let received = try await client.watchEscalations(.init()) { response in
                        var kinds: [(String, Kangyi_Verification_V1_EscalationKind)] = []
                        for try await message in response.messages {
                            kinds.append((message.escalation.case.id, message.escalation.kind))
                            if kinds.count == 1 {
                                let second = try await h.newCase()
                                _ = try await h.store.sweepBreaches()
                                _ = second
                            }
                            if kinds.count == 2 { break }
                        }
                        return kinds
                    }
                    #expect(received.count == 2)
                    #expect(received.first?.0 == late.uuidString.lowercased())
                    #expect(received.allSatisfy { $0.1 == .verify })
                }
            }
            // Verified in time for nothing: the case leaves the verify stage and is no longer breached.
            _ = try await asStaff("alice") {
                try await h.service.verify(request: .with { $0.caseID = late.uuidString; $0.requestID = "v" }, context: .testing)
            }
            #expect(try await h.store.openEscalations(upTo: .max).map(\.caseRecord.id).contains(late) == false)
        }
    }

    @Test func statisticsAreQueries() async throws {
        try await VerificationHarness.run("statistics") { h in
            try await h.withIntakeServer {
                var ids: [UUID] = []
                for category in ["food_supply", "food_supply", "medical"] { ids.append(try await h.newCase(category: category)) }
                for (n, id) in ids.prefix(2).enumerated() {
                    _ = try await asStaff("alice") {
                        try await h.service.verify(request: .with { $0.caseID = id.uuidString; $0.requestID = "v\(n)" }, context: .testing)
                    }
                }
                _ = try await asStaff("alice") {
                    try await h.service.assign(
                        request: .with { $0.caseID = ids[0].uuidString; $0.requestID = "a"; $0.department = "commerce" }, context: .testing)
                }
                _ = try await asStaff("bob") {
                    try await h.service.resolve(
                        request: .with { $0.caseID = ids[0].uuidString; $0.requestID = "r"; $0.resolution = "done" }, context: .testing)
                }
                _ = try await asStaff("carol") {
                    try await h.service.recordReturnVisit(
                        request: .with { $0.caseID = ids[0].uuidString; $0.requestID = "rv"; $0.reached = true; $0.satisfaction = .partlySolved },
                        context: .testing)
                }
                let all = try await h.service.getStatistics(request: .init(), context: .testing)
                let counts = Dictionary(uniqueKeysWithValues: all.counts.map { ("\($0.state)/\($0.category)", $0.count) })
                #expect(counts == ["closed/food_supply": 1, "verified/food_supply": 1, "submitted/medical": 1])
                #expect(all.timeToVerify.count == 2)
                #expect(all.timeToResolve.count == 1)
                #expect(all.timeToVerify.median.timeInterval >= 0 && all.timeToVerify.p90.timeInterval >= all.timeToVerify.median.timeInterval)
                #expect(all.partlySolved == 1 && all.satisfied == 0 && all.notSolved == 0)
                let future = try await h.service.getStatistics(
                    request: .with { $0.window = .with { $0.start = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(3600)) } },
                    context: .testing)
                #expect(future.counts.isEmpty && future.timeToVerify.count == 0 && !future.timeToVerify.hasMedian)
            }
        }
    }
}

/// Waits (up to 20 s) for `condition`, polling.
func waitUntil(_ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(20)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw PlatformError(description: "condition not met within 20 s") }
        try await Task.sleep(for: .milliseconds(50))
    }
}
