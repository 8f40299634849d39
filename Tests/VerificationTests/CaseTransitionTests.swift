import Foundation
import GRPCCore
import KangyiAPI
@testable import KangyiIntake
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import SwiftProtobuf
import Testing

@testable import KangyiVerification

/// Transitions on real PostgreSQL, carried to a real intake server over HTTP/2.
@Suite struct CaseTransitionTests {
    @Test func theWholeLifeOfACaseMovesIntakeAlong() async throws {
        try await VerificationHarness.run("transition_path") { h in
            try await h.withIntakeServer {
                let id = try await h.newCase()
                let caseID = id.uuidString
                let verified = try await asStaff("alice") {
                    try await h.service.verify(request: .with { $0.caseID = caseID; $0.requestID = "v-1"; $0.note = "phoned" }, context: .testing)
                }
                #expect(verified.case.state == .verified)
                #expect(verified.intakeSync == .synced)
                #expect(try await h.intakeStatus(id) == .verified)

                let assigned = try await asStaff("alice") {
                    try await h.service.assign(
                        request: .with { $0.caseID = caseID; $0.requestID = "a-1"; $0.department = "commerce" }, context: .testing)
                }
                #expect(assigned.case.department == "commerce")
                #expect(try await h.intakeStatus(id) == .assigned)

                _ = try await asStaff("bob") {
                    try await h.service.resolve(
                        request: .with { $0.caseID = caseID; $0.requestID = "r-1"; $0.resolution = "vegetables delivered" },
                        context: .testing)
                }
                #expect(try await h.intakeStatus(id) == .resolved)

                // Not reached: recorded, no move. Reached and not solved: back to the department.
                let unreached = try await asStaff("carol") {
                    try await h.service.recordReturnVisit(
                        request: .with { $0.caseID = caseID; $0.requestID = "rv-1"; $0.reached = false }, context: .testing)
                }
                #expect(unreached.case.state == .resolved)
                let notSolved = try await asStaff("carol") {
                    try await h.service.recordReturnVisit(
                        request: .with { $0.caseID = caseID; $0.requestID = "rv-2"; $0.reached = true; $0.satisfaction = .notSolved },
                        context: .testing)
                }
                #expect(notSolved.case.state == .assigned)
                #expect(try await h.intakeStatus(id) == .assigned)
                _ = try await asStaff("bob") {
                    try await h.service.resolve(
                        request: .with { $0.caseID = caseID; $0.requestID = "r-2"; $0.resolution = "second delivery" },
                        context: .testing)
                }
                let closed = try await asStaff("carol") {
                    try await h.service.recordReturnVisit(
                        request: .with { $0.caseID = caseID; $0.requestID = "rv-3"; $0.reached = true; $0.satisfaction = .satisfied },
                        context: .testing)
                }
                #expect(closed.case.state == .closed)
                #expect(closed.case.hasCloseTime)
                #expect(try await h.intakeStatus(id) == .closed)

                // The history: who, from, to, why — in order.
                let got = try await h.service.getCase(request: .with { $0.caseID = caseID }, context: .testing)
                #expect(got.history.map(\.action) == [.verify, .assign, .resolve, .returnVisit, .returnVisit, .resolve, .returnVisit])
                #expect(got.history.map(\.actor.caller) == ["alice", "alice", "bob", "carol", "carol", "bob", "carol"])
                #expect(got.history[0].reason == "phoned")
                #expect(got.history[0].actor.department == "hotline")
                #expect(got.history[1].department == "commerce")
                #expect(got.history[3].reached == false)
                #expect(got.history[4].satisfaction == .notSolved)
                #expect(got.history.last?.fromState == .resolved && got.history.last?.toState == .closed)
                // Intake recorded the moves as the staff members', once each.
                let intakeMoves = try await h.scalar(
                    "SELECT count(*)::int FROM intake.status_transitions WHERE help_request_id = '\(id)' AND actor IN ('alice', 'bob', 'carol')")
                #expect(intakeMoves == 6)
            }
        }
    }

    @Test func aRetriedActionIsAppliedOnce() async throws {
        try await VerificationHarness.run("transition_retry") { h in
            try await h.withIntakeServer {
                let id = try await h.newCase()
                let verify = Kangyi_Verification_V1_VerifyRequest.with { $0.caseID = id.uuidString; $0.requestID = "same" }
                // Sent five times at once and once more after: one event, one intake transition.
                let replays = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for _ in 0..<5 {
                        group.addTask { try await asStaff("alice") { try await h.service.verify(request: verify, context: .testing) }.replayed }
                    }
                    return try await group.reduce(into: [Bool]()) { $0.append($1) }
                }
                #expect(replays.filter { !$0 }.count == 1)
                let again = try await asStaff("alice") { try await h.service.verify(request: verify, context: .testing) }
                #expect(again.replayed)
                #expect(again.case.state == .verified)
                #expect(try await h.scalar("SELECT count(*)::int FROM verification.events WHERE action = 'verify'") == 1)
                #expect(try await h.scalar("SELECT count(*)::int FROM intake.status_transitions WHERE help_request_id = '\(id)'") == 1)
                // The same id for another action is a mistake, not a replay.
                let reused = await #expect(throws: ServiceError.self) {
                    try await asStaff("alice") {
                        try await h.service.reject(
                            request: .with { $0.caseID = id.uuidString; $0.requestID = "same"; $0.reason = "spam" }, context: .testing)
                    }
                }
                #expect(reused?.code == .alreadyExists)
            }
        }
    }

    /// Intake down during a transition: the case moves, the response says PENDING, and once intake is
    /// back the outbox delivers it — in order, once — and the two services agree.
    @Test func intakeUnreachableDuringATransition() async throws {
        try await VerificationHarness.run("transition_intake_down") { h in
            let id = try await h.newCase()
            let caseID = id.uuidString
            // No intake server is listening.
            let verified = try await asStaff("alice") {
                try await h.service.verify(request: .with { $0.caseID = caseID; $0.requestID = "v" }, context: .testing)
            }
            #expect(verified.case.state == .verified)
            #expect(verified.intakeSync == .pending)
            #expect(verified.case.pendingIntakeTransitions == 1)
            let assigned = try await asStaff("alice") {
                try await h.service.assign(
                    request: .with { $0.caseID = caseID; $0.requestID = "a"; $0.department = "commerce" }, context: .testing)
            }
            #expect(assigned.intakeSync == .pending)
            #expect(assigned.case.pendingIntakeTransitions == 2)
            #expect(try await h.intakeStatus(id) == .submitted)
            let attempts = try await h.scalar("SELECT max(attempts)::int FROM verification.intake_outbox")
            #expect((attempts ?? 0) >= 1)

            try await h.withIntakeServer {
                try await withServiceGroup([h.sync]) { _ in
                    // The background loop delivers both, in order. Intake applies a transition a moment
                    // before the outbox records its delivery, so both are waited for.
                    let deadline = ContinuousClock.now + .seconds(20)
                    while ContinuousClock.now < deadline {
                        let pending = try await h.service.getCase(request: .with { $0.caseID = caseID }, context: .testing)
                            .case.pendingIntakeTransitions
                        if try await h.intakeStatus(id) == .assigned, pending == 0 { break }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(try await h.intakeStatus(id) == .assigned)
                let got = try await h.service.getCase(request: .with { $0.caseID = caseID }, context: .testing)
                #expect(got.case.pendingIntakeTransitions == 0)
                let moves = try await h.scalar(
                    "SELECT string_agg(to_status, ',' ORDER BY created_at) FROM intake.status_transitions WHERE help_request_id = '\(id)'",
                    as: String.self)
                #expect(moves == "verified,assigned")
                // Delivering again changes nothing: intake answers a replay.
                try await h.store.client.query(
                    "UPDATE verification.intake_outbox SET delivered_at = NULL", logger: TestDatabase.logger)
                #expect(await h.sync.deliver(caseID: id) == .synced)
                #expect(try await h.scalar("SELECT count(*)::int FROM intake.status_transitions WHERE help_request_id = '\(id)'") == 2)
            }
        }
    }

    @Test func badInputNamesTheFieldAndWritesNothing() async throws {
        try await VerificationHarness.run("transition_invalid") { h in
            let id = try await h.newCase()
            let rejected = await #expect(throws: ServiceError.self) {
                try await asStaff("alice") {
                    try await h.service.reject(request: .with { $0.caseID = "not-a-uuid"; $0.requestID = "" }, context: .testing)
                }
            }
            #expect(Set(rejected?.violations.map(\.field) ?? []) == ["case_id", "request_id", "reason"])
            let visit = await #expect(throws: ServiceError.self) {
                try await asStaff("alice") {
                    try await h.service.recordReturnVisit(
                        request: .with { $0.caseID = id.uuidString; $0.requestID = "x"; $0.reached = true }, context: .testing)
                }
            }
            #expect(visit?.violations.map(\.field) == ["satisfaction"])
            let department = await #expect(throws: ServiceError.self) {
                try await asStaff("alice") {
                    try await h.service.assign(
                        request: .with { $0.caseID = id.uuidString; $0.requestID = "x"; $0.department = "nasa" }, context: .testing)
                }
            }
            #expect(department?.reason == "UNKNOWN_DEPARTMENT")
            let duplicate = await #expect(throws: ServiceError.self) {
                try await asStaff("alice") {
                    try await h.service.markDuplicate(
                        request: .with { $0.caseID = id.uuidString; $0.requestID = "x"; $0.duplicateOf = UUID().uuidString },
                        context: .testing)
                }
            }
            #expect(duplicate?.reason == "UNKNOWN_CASE")
            let forbidden = await #expect(throws: ServiceError.self) {
                try await asStaff("alice") {
                    try await h.service.resolve(
                        request: .with { $0.caseID = id.uuidString; $0.requestID = "x"; $0.resolution = "done" }, context: .testing)
                }
            }
            #expect(forbidden?.code == .failedPrecondition)
            #expect(forbidden?.metadata["current_state"] == "submitted")
            let unknown = await #expect(throws: ServiceError.self) {
                try await asStaff("alice") {
                    try await h.service.verify(request: .with { $0.caseID = UUID().uuidString; $0.requestID = "y" }, context: .testing)
                }
            }
            #expect(unknown?.code == .notFound)
            let anonymous = await #expect(throws: ServiceError.self) {
                try await h.service.verify(request: .with { $0.caseID = id.uuidString; $0.requestID = "z" }, context: .testing)
            }
            #expect(anonymous?.code == .unauthenticated)
            #expect(try await h.scalar("SELECT count(*)::int FROM verification.events") == 0)
            #expect(try await h.scalar("SELECT count(*)::int FROM verification.intake_outbox") == 0)
            #expect(try await h.scalar("SELECT state FROM verification.cases", as: String.self) == "submitted")
        }
    }

    @Test func theAuditTrailIsAppendOnly() async throws {
        try await VerificationHarness.run("transition_audit") { h in
            let id = try await h.newCase()
            _ = try await asStaff("alice") {
                try await h.service.reject(request: .with { $0.caseID = id.uuidString; $0.requestID = "r"; $0.reason = "prank" }, context: .testing)
            }
            for sql in ["UPDATE verification.events SET actor = 'mallory'", "DELETE FROM verification.events", "TRUNCATE verification.events CASCADE"] {
                await #expect(throws: (any Error).self, "\(sql)") {
                    try await h.client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
                }
            }
            #expect(try await h.scalar("SELECT actor FROM verification.events", as: String.self) == "alice")
        }
    }
}
