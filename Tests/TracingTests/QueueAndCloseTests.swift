import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Testing

@testable import KangyiTracing

/// The investigators' queue and the life of a task on real PostgreSQL: urgency order, leases under
/// concurrent investigators, call outcomes, and every close rule.
@Suite struct QueueAndCloseTests {
    func claim(_ h: TracingHarness, as investigator: String, reason: String = "") async throws -> Kangyi_Tracing_V1_Task? {
        let response = try await asInvestigator(investigator) {
            try await h.service.claimNextCall(request: .with { $0.reason = reason }, context: .testing)
        }
        return response.hasTask ? response.task : nil
    }

    func call(
        _ h: TracingHarness, _ taskID: String, as investigator: String = "investigator-1", outcome: Kangyi_Tracing_V1_CallOutcome,
        requestID: String = RequestID.mint(), _ fill: (inout Kangyi_Tracing_V1_RecordCallAttemptRequest) -> Void = { _ in }
    ) async throws -> Kangyi_Tracing_V1_RecordCallAttemptResponse {
        var request = Kangyi_Tracing_V1_RecordCallAttemptRequest.with {
            $0.taskID = taskID
            $0.requestID = requestID
            $0.outcome = outcome
        }
        fill(&request)
        let built = request
        return try await asInvestigator(investigator) { try await h.service.recordCallAttempt(request: built, context: .testing) }
    }

    func close(
        _ h: TracingHarness, _ taskID: String, _ reason: Kangyi_Tracing_V1_CloseReason, requestID: String = RequestID.mint(),
        classification: Kangyi_Tracing_V1_Classification = .unspecified
    ) async throws -> Kangyi_Tracing_V1_CloseTaskResponse {
        try await asInvestigator("investigator-1") {
            try await h.service.closeTask(
                request: .with {
                    $0.taskID = taskID
                    $0.requestID = requestID
                    $0.reason = reason
                    $0.classification = classification
                }, context: .testing)
        }
    }

    @Test func concurrentRetriesOfACaseMakeOneCase() async throws {
        try await TracingHarness.run("case_retries") { h in
            let request = Kangyi_Tracing_V1_CreateCaseRequest.with {
                $0.requestID = "case-retried"
                $0.indexPerson = .with {
                    $0.name = "周杰"
                    $0.idNumber = residentID()
                }
                $0.classification = .suspected
            }
            let answers = try await withThrowingTaskGroup(of: Kangyi_Tracing_V1_CreateCaseResponse.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await asInvestigator("investigator-1") { try await h.service.createCase(request: request, context: .testing) } }
                }
                var all: [Kangyi_Tracing_V1_CreateCaseResponse] = []
                for try await answer in group { all.append(answer) }
                return all
            }
            #expect(Set(answers.map(\.case.id)).count == 1)
            #expect(answers.filter { !$0.replayed }.count == 1)
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.cases") == 1)
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.persons") == 1)
        }
    }

    @Test func overdueFirstThenHouseholdThenEarliestDue() async throws {
        try await TracingHarness.run("queue_order") { h in
            let caseID = try await h.newCase()
            let ids = try await h.add(
                [contact(relation: .close), contact(relation: .household), contact(relation: .casual), contact(relation: .close)],
                to: caseID)
            // The casual contact was listed 30 hours ago: overdue. The last close contact is due earliest of the rest.
            try await h.execute("UPDATE tracing.tasks SET listed_at = now() - interval '30 hours', due_at = now() - interval '6 hours' WHERE id = '\(ids[2])'")
            try await h.execute("UPDATE tracing.tasks SET due_at = now() + interval '1 hour' WHERE id = '\(ids[3])'")
            var order: [String] = []
            for n in 0..<4 {
                let task = try unwrap(try await claim(h, as: "investigator-\(n)"))
                order.append(task.id)
                #expect(task.claimedBy == "investigator-\(n)")
                #expect(task.person.masked)  // no reason given
            }
            #expect(order == [ids[2], ids[1], ids[3], ids[0]])
            #expect(try await claim(h, as: "investigator-9") == nil)
            // A claimer with a live claim gets it back, renewed, and reads it unmasked with a reason.
            let again = try unwrap(try await claim(h, as: "investigator-0", reason: "calling the contact"))
            #expect(again.id == ids[2] && !again.person.masked)
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.access_log WHERE method = 'ClaimNextCall'") == 1)
        }
    }

    @Test func concurrentInvestigatorsNeverShareATask() async throws {
        try await TracingHarness.run("queue_concurrent") { h in
            let caseID = try await h.newCase()
            let all = Set(try await h.add((0..<40).map { _ in contact() }, to: caseID))
            let calledPerInvestigator = try await withThrowingTaskGroup(of: [String].self) { group in
                for n in 0..<8 {
                    group.addTask {
                        var mine: [String] = []
                        // Each claims, calls (no answer: the task is offered again only an hour later), until none.
                        while let task = try await claim(h, as: "investigator-\(n)") {
                            mine.append(task.id)
                            _ = try await call(h, task.id, as: "investigator-\(n)", outcome: .noAnswer)
                        }
                        return mine
                    }
                }
                var lists: [[String]] = []
                for try await list in group { lists.append(list) }
                return lists
            }
            let called = calledPerInvestigator.flatMap { $0 }
            #expect(called.count == 40)
            #expect(Set(called) == all)
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.attempts") == 40)
        }
    }

    @Test func aClaimIsTheHoldersUntilReleasedOrExpired() async throws {
        try await TracingHarness.run("queue_lease") { h in
            let caseID = try await h.newCase()
            let id = try await h.add([contact()], to: caseID)[0]
            let held = try unwrap(try await claim(h, as: "investigator-1"))
            let other = try await refusal { try await call(h, held.id, as: "investigator-2", outcome: .reached) }
            #expect(other.reason == "CLAIMED_BY_ANOTHER")
            let notMine = try await refusal {
                try await asInvestigator("investigator-2") {
                    try await h.service.releaseCall(request: .with { $0.taskID = id }, context: .testing)
                }
            }
            #expect(notMine.reason == "NOT_CLAIMED_BY_CALLER")
            _ = try await asInvestigator("investigator-1") {
                try await h.service.releaseCall(request: .with { $0.taskID = id }, context: .testing)
            }
            #expect(try await claim(h, as: "investigator-2")?.id == id)
            // An expired claim is anyone's.
            try await h.execute("UPDATE tracing.tasks SET claim_expires_at = now() - interval '1 second'")
            #expect(try await claim(h, as: "investigator-3")?.id == id)
        }
    }

    @Test func aReachedCallStartsDailyFollowUpAndAddsTheContactsNamed() async throws {
        try await TracingHarness.run("calls_reached") { h in
            let caseID = try await h.newCase()
            let id = try await h.add([contact()], to: caseID)[0]
            let friend = randomPhone()
            let request = RequestID.mint()
            let first = try await call(h, id, outcome: .reached, requestID: request) {
                $0.symptoms = [.cough]
                $0.temperatureDecidegrees = 376
                $0.quarantine = .home
                $0.quarantineLocation = "家中"
                $0.namedContacts = [contact(name: "同事", phone: friend, relation: .close)]
            }
            #expect(first.task.status == .following && first.task.symptomatic && first.task.attempts == 1)
            #expect(first.task.hasFirstReachedAt)
            // The next follow-up: a day later, due within 24 hours of it.
            let next = first.task.callableFrom.date.timeIntervalSinceNow
            #expect((86_000...86_400).contains(next))
            #expect(first.task.dueAt.date.timeIntervalSince(first.task.callableFrom.date) == 86_400)
            #expect(first.addedContacts.count == 1 && first.addedContacts[0].created)
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.tasks WHERE case_id = '\(caseID)'") == 2)
            // The same request again: the same attempt, replayed, nothing added.
            let replay = try await call(h, id, outcome: .reached, requestID: request)
            #expect(replay.replayed && replay.attempt.id == first.attempt.id)
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.attempts") == 1)
            // The request id on another task is refused.
            let other = try await h.add([contact()], to: caseID)[0]
            #expect(try await refusal { try await call(h, other, outcome: .noAnswer, requestID: request) }.reason == "REQUEST_ID_REUSED")
            // Details only a conversation gives are refused on an unanswered call.
            let unanswered = try await refusal { try await call(h, other, outcome: .busy) { $0.symptoms = [.fever] } }
            #expect(unanswered.violations.map(\.field) == ["symptoms"])
            // A follow-up asked for after the window is refused.
            let late = try await refusal {
                try await call(h, id, outcome: .reached) { $0.nextFollowUp = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(30 * 86_400)) }
            }
            #expect(late.reason == "INVALID_FIELDS" || late.violations.map(\.field) == ["next_follow_up"])
        }
    }

    @Test func quarantineCompletedOnlyAfterTheWindowAndAReach() async throws {
        try await TracingHarness.run("close_completed") { h in
            let caseID = try await h.newCase()
            let id = try await h.add([contact()], to: caseID)[0]
            #expect(try await refusal { try await close(h, id, .quarantineCompleted) }.reason == "NEVER_REACHED")
            _ = try await call(h, id, outcome: .reached)
            #expect(try await refusal { try await close(h, id, .quarantineCompleted) }.reason == "FOLLOW_UP_WINDOW_OPEN")
            try await h.execute("UPDATE tracing.tasks SET follow_up_until = (now() AT TIME ZONE 'Asia/Shanghai')::date - 1")
            let request = RequestID.mint()
            let closed = try await close(h, id, .quarantineCompleted, requestID: request)
            #expect(closed.task.status == .closed && closed.task.closeReason == .quarantineCompleted && !closed.replayed)
            #expect(try await close(h, id, .quarantineCompleted, requestID: request).replayed)
            #expect(try await refusal { try await close(h, id, .lostToFollowUp) }.reason == "TASK_CLOSED")
            #expect(try await refusal { try await call(h, id, outcome: .reached) }.reason == "TASK_CLOSED")
        }
    }

    @Test func lostToFollowUpAfterUnansweredCallsOnEnoughDays() async throws {
        try await TracingHarness.run("close_lost") { h in
            let caseID = try await h.newCase()
            let id = try await h.add([contact()], to: caseID)[0]
            for _ in 0..<3 { _ = try await call(h, id, outcome: .noAnswer) }
            // Three calls on one day are one day.
            let one = try await refusal { try await close(h, id, .lostToFollowUp) }
            #expect(one.reason == "NOT_ENOUGH_UNANSWERED_DAYS" && one.metadata["unanswered_days"] == "1")
            try await h.execute(
                """
                UPDATE tracing.attempts a SET attempted_at = now() - make_interval(days => r.n::integer)
                FROM (SELECT id, row_number() OVER (ORDER BY seq) - 1 AS n FROM tracing.attempts) r WHERE a.id = r.id
                """)
            let closed = try await close(h, id, .lostToFollowUp)
            #expect(closed.task.closeReason == .lostToFollowUp)
            // A reach restarts the count.
            let second = try await h.add([contact()], to: caseID)[0]
            try await h.execute("UPDATE tracing.tasks SET callable_from = now() WHERE id = '\(second)'")
            for _ in 0..<3 { _ = try await call(h, second, outcome: .wrongNumber) }
            try await h.execute("UPDATE tracing.attempts SET attempted_at = now() - interval '5 days' WHERE task_id = '\(second)'")
            _ = try await call(h, second, outcome: .reached)
            _ = try await call(h, second, outcome: .notInService)
            #expect(try await refusal { try await close(h, second, .lostToFollowUp) }.metadata["unanswered_days"] == "1")
        }
    }

    @Test func convertedToCaseOpensACaseAroundThePerson() async throws {
        try await TracingHarness.run("close_converted") { h in
            let caseID = try await h.newCase()
            let id = try await h.add([contact(name: "孙磊")], to: caseID)[0]
            let missing = try await refusal { try await close(h, id, .convertedToCase) }
            #expect(missing.violations.map(\.field) == ["classification"])
            let closed = try await close(h, id, .convertedToCase, classification: .confirmed)
            #expect(closed.task.closeReason == .convertedToCase && closed.case.classification == .confirmed)
            #expect(closed.task.convertedCaseID == closed.case.id)
            #expect(closed.case.indexPersonID == closed.task.person.id)
            // The new case takes contacts of its own.
            let next = try await h.add([contact()], to: closed.case.id)
            #expect(next.count == 1)
            // The index person is not their own contact.
            let person = try await asInvestigator("investigator-1") {
                try await h.service.getPerson(request: .with { $0.personID = closed.case.indexPersonID; $0.reason = "check" }, context: .testing)
            }
            let selfContact = try await refusal {
                try await h.add(
                    [.with {
                        $0.person = .with { $0.name = person.person.name; $0.phone = person.person.phone }
                        $0.relation = .household
                        $0.lastExposureDate = CalendarDay.of(Date())
                    }], to: closed.case.id)
            }
            #expect(selfContact.violations.map(\.field) == ["contacts[0].person"])
        }
    }

    @Test func overdueTasksAreSweptOnceAndWatchedFromACursor() async throws {
        try await TracingHarness.run("overdue_watch") { h in
            let caseID = try await h.newCase()
            let ids = try await h.add([contact(), contact(), contact()], to: caseID)
            try await h.execute("UPDATE tracing.tasks SET due_at = now() - interval '1 minute' WHERE id IN ('\(ids[0])', '\(ids[1])')")
            #expect(try await h.tasks.sweepOverdue() == 2)
            #expect(try await h.tasks.sweepOverdue() == 0)
            let stillOverdue = try await h.tasks.stillOverdue(upTo: try await h.tasks.lastOverdueSeq(), district: nil)
            #expect(Set(stillOverdue.map { $0.task.id.uuidString.lowercased() }) == [ids[0], ids[1]])
            // Reached: no longer overdue; the third then misses its time and follows.
            _ = try await call(h, ids[0], outcome: .reached)
            try await h.execute("UPDATE tracing.tasks SET due_at = now() - interval '1 minute' WHERE id = '\(ids[2])'")
            #expect(try await h.tasks.sweepOverdue() == 1)
            let open = try await h.tasks.stillOverdue(upTo: 1_000, district: nil)
            #expect(Set(open.map { $0.task.id.uuidString.lowercased() }) == [ids[1], ids[2]])
            let after = try await h.tasks.overdue(after: stillOverdue.last!.seq, district: nil, limit: 10)
            #expect(after.map { $0.task.id.uuidString.lowercased() } == [ids[2]])
            let listed = try await asInvestigator("supervisor-1") {
                try await h.service.listTasks(request: .with { $0.overdueOnly = true }, context: .testing)
            }
            #expect(Set(listed.tasks.map(\.id)) == [ids[1], ids[2]])
            #expect(listed.tasks.allSatisfy { $0.overdue && $0.person.masked })
        }
    }
}
