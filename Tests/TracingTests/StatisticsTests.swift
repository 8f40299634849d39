import Foundation
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Testing

@testable import KangyiTracing

/// The 24-hour reach indicator, exact on a set built by hand.
@Suite struct StatisticsTests {
    @Test func theTwentyFourHourIndicatorOnAConstructedSet() async throws {
        try await TracingHarness.run("statistics") { h in
            let caseID = try await h.newCase()
            let ids = try await h.add((0..<5).map { _ in contact(district: "410102") }, to: caseID)
            let other = try await h.add([contact(district: "410105")], to: caseID)
            // Listed at 10:00 China Standard Time ten days ago; first reached after 2 h, 10 h, 30 h; one never; one at 23 h 59 m.
            let listed = "(date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') - interval '10 days' + interval '10 hours') AT TIME ZONE 'Asia/Shanghai'"
            try await h.execute("UPDATE tracing.tasks SET listed_at = \(listed), due_at = \(listed) + interval '24 hours'")
            let reach: [(String, String, Int)] = [
                (ids[0], "2 hours", 1), (ids[1], "10 hours", 3), (ids[2], "30 hours", 2), (ids[4], "23 hours 59 minutes", 2),
            ]
            for (id, after, attempts) in reach {
                try await h.execute(
                    """
                    UPDATE tracing.tasks SET first_reached_at = listed_at + interval '\(after)', status = 'following',
                        due_at = now() + interval '1 day',
                        attempts_to_first_reach = \(attempts), attempts = \(attempts) WHERE id = '\(id)'
                    """)
            }
            try await h.execute("UPDATE tracing.tasks SET symptomatic = true WHERE id = '\(ids[1])'")
            // ids[3] was never reached and is overdue now.
            let response = try await asInvestigator("supervisor-1") {
                try await h.service.getTracingStatistics(
                    request: .with {
                        $0.listed = .with {
                            $0.start = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(-12 * 86_400))
                            $0.end = Google_Protobuf_Timestamp(date: Date())
                        }
                    }, context: .testing)
            }
            let day = CalendarDay.of(Date().addingTimeInterval(-10 * 86_400))
            let row = try unwrap(response.days.first { $0.district == "410102" })
            #expect(row.day == day)
            #expect(row.contactsListed == 5)
            #expect(row.reachedWithin24H == 3)
            #expect(row.reachedWithin24HShare == 0.6)
            #expect(row.reached == 4)
            // Median of 2 h, 10 h, 23 h 59 m, 30 h: halfway between 10 h and 23 h 59 m.
            let median: Int64 = (10 * 3600 + 23 * 3600 + 59 * 60) / 2
            #expect(row.medianTimeToFirstReach.seconds == median)
            #expect(row.attemptsPerReachedPerson == 2.0)
            #expect(row.overdueNow == 1)
            #expect(row.symptomaticFound == 1)
            let elsewhere = try unwrap(response.days.first { $0.district == "410105" })
            #expect(elsewhere.contactsListed == 1 && elsewhere.reachedWithin24HShare == 0 && !elsewhere.hasMedianTimeToFirstReach)
            _ = other
            // A window that must be bounded.
            let unbounded = try await refusal {
                try await asInvestigator("supervisor-1") {
                    try await h.service.getTracingStatistics(request: .init(), context: .testing)
                }
            }
            #expect(unbounded.violations.map(\.field) == ["listed"])
        }
    }

    @Test func callsPerInvestigator() async throws {
        try await TracingHarness.run("statistics_investigators") { h in
            let caseID = try await h.newCase()
            let ids = try await h.add([contact(), contact()], to: caseID)
            for (n, (id, outcome)) in [(ids[0], Kangyi_Tracing_V1_CallOutcome.noAnswer), (ids[1], .reached)].enumerated() {
                _ = try await asInvestigator("investigator-\(n % 2)") {
                    try await h.service.recordCallAttempt(
                        request: .with {
                            $0.taskID = id
                            $0.requestID = RequestID.mint()
                            $0.outcome = outcome
                        }, context: .testing)
                }
            }
            let statistics = try await h.tasks.statistics(
                from: Date().addingTimeInterval(-3600), before: Date().addingTimeInterval(3600), district: nil)
            #expect(statistics.investigators.map { "\($0.name):\($0.calls):\($0.reached)" } == ["investigator-0:1:0", "investigator-1:1:1"])
        }
    }
}
