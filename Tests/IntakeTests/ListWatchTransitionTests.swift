import GRPCCore
import KangyiAPI
@testable import KangyiIntake
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Testing

@Suite struct ListHelpRequestsTests {
    @Test func pagesThroughEverythingByPriorityWithGreenChannelFirst() async throws {
        try await IntakeHarness.run("list") { intake in
            for index in 0..<7 {
                var request = submission("list-\(index)", phone: "1370000000\(index)", description: "求助 \(index) \(RequestID.mint())")
                request.specialGroups = index.isMultiple(of: 3) ? [.pregnant] : []
                request.urgency = index.isMultiple(of: 2) ? .critical : .routine
                _ = try await intake.submit(request)
            }
            var seen: [Kangyi_Intake_V1_HelpRequest] = []
            var token = ""
            repeat {
                let page = try await intake.service.listHelpRequests(
                    request: .with { $0.pageSize = 3; $0.pageToken = token }, context: .testing)
                #expect(page.helpRequests.count <= 3)
                seen += page.helpRequests
                token = page.nextPageToken
            } while !token.isEmpty
            #expect(seen.count == 7)
            #expect(Set(seen.map(\.id)).count == 7)
            // Green channel first, then priority descending: as one number, never increasing.
            let keys: [Int] = seen.map { ($0.greenChannel ? 1000 : 0) + Int($0.priority) }
            #expect(keys == keys.sorted(by: >))
            #expect(seen.prefix(3).allSatisfy { $0.greenChannel })
        }
    }

    @Test func filtersAndRefusesATokenFromOtherFilters() async throws {
        try await IntakeHarness.run("listfilter") { intake in
            _ = try await intake.submit(submission("a", phone: "13700000001", category: "medical", description: "看病"))
            _ = try await intake.submit(submission("b", phone: "13700000002", category: "food_supply", description: "买菜"))
            _ = try await intake.submit(submission("c", phone: "13700000003", category: "food_supply", description: "买米"))
            let food = try await intake.service.listHelpRequests(
                request: .with { $0.category = "food_supply"; $0.pageSize = 1 }, context: .testing)
            #expect(food.helpRequests.map(\.category) == ["food_supply"])
            #expect(!food.nextPageToken.isEmpty)
            await #expect {
                try await intake.service.listHelpRequests(
                    request: .with { $0.category = "medical"; $0.pageToken = food.nextPageToken }, context: .testing)
            } throws: { ($0 as? ServiceError)?.reason == "PAGE_TOKEN_MISMATCH" }
            let newest = try await intake.service.listHelpRequests(request: .with { $0.order = .newest }, context: .testing)
            #expect(newest.helpRequests.map(\.description_p) == ["买米", "买菜", "看病"])
            let none = try await intake.service.listHelpRequests(
                request: .with { $0.statuses = [.resolved] }, context: .testing)
            #expect(none.helpRequests.isEmpty)
            await #expect { try await intake.service.listHelpRequests(request: .with { $0.pageSize = 501 }, context: .testing) }
                throws: { ($0 as? ServiceError)?.violations.first?.field == "page_size" }
        }
    }
}

@Suite struct TransitionHelpRequestTests {
    @Test func movesThroughTheLifecycleOnceAndRefusesForbiddenMoves() async throws {
        try await IntakeHarness.run("transition") { intake in
            let filed = try await intake.submit(submission()).helpRequest
            func move(_ transition: String, _ status: Kangyi_Intake_V1_HelpRequestStatus) async throws
                -> Kangyi_Intake_V1_TransitionHelpRequestResponse
            {
                try await intake.service.transitionHelpRequest(
                    request: .with {
                        $0.id = filed.id
                        $0.transitionID = transition
                        $0.toStatus = status
                        $0.reason = "checked by phone"
                    }, context: .testing)
            }
            let verified = try await move("t1", .verified)
            #expect(verified.helpRequest.status == .verified && !verified.replayed)
            let retried = try await move("t1", .verified)
            #expect(retried.replayed && retried.helpRequest.status == .verified)
            #expect(try await intake.count("SELECT count(*)::int FROM intake.status_transitions") == 1)

            await #expect { try await move("t2", .closed) } throws: { error in
                let error = error as? ServiceError
                return error?.code == .failedPrecondition && error?.message.contains("verified") == true
                    && error?.metadata["current_status"] == "verified"
            }
            await #expect { try await move("t1", .assigned) } throws: { ($0 as? ServiceError)?.reason == "TRANSITION_ID_REUSED" }
            _ = try await move("t3", .assigned)
            _ = try await move("t4", .resolved)
            #expect(try await move("t5", .closed).helpRequest.status == .closed)
            #expect(try await move("t6", .assigned).helpRequest.status == .assigned)  // reopened
        }
    }

    @Test func everyForbiddenMoveIsForbidden() {
        for from in HelpRequestStatus.allCases {
            for to in HelpRequestStatus.allCases {
                let expected = (Lifecycle.allowed[from] ?? []).contains(to)
                #expect(Lifecycle.allows(from: from, to: to) == expected)
            }
            #expect(!Lifecycle.allows(from: from, to: from))
        }
        #expect(Lifecycle.allows(from: .submitted, to: .verified))
        #expect(!Lifecycle.allows(from: .submitted, to: .resolved))
        #expect(!Lifecycle.allows(from: .closed, to: .submitted))
    }
}

@Suite struct WatchHelpRequestsTests {
    @Test func streamsNewAndChangedRequestsAndResumesFromACursor() async throws {
        try await IntakeHarness.run("watch") { intake in
            let first = try await intake.submit(submission("w1", phone: "13600000001", description: "第一")).helpRequest
            let second = try await intake.submit(submission("w2", phone: "13600000002", description: "第二")).helpRequest

            // The feed shows a change once every older write transaction in the cluster has finished
            // (other tests write concurrently), so wait for it rather than expect it at once.
            let feed = try await intake.changes(after: .start, count: 2)
            try #require(feed.count == 2)
            #expect(feed.map(\.0.id.uuidString).map { $0.lowercased() } == [first.id, second.id])

            // Resume after the first: only the second, then a change to the first shows up again.
            let afterFirst = feed[0].1
            _ = try await intake.service.transitionHelpRequest(
                request: .with { $0.id = first.id; $0.transitionID = "w-t"; $0.toStatus = .verified }, context: .testing)
            let resumed = try await intake.changes(after: afterFirst, count: 2)
            #expect(resumed.map { $0.0.id.uuidString.lowercased() } == [second.id, first.id])
            #expect(resumed.last?.0.status == .verified)
            #expect(try await intake.store().changes(after: resumed.last!.1, limit: 100).isEmpty)
            #expect(FeedCursor(token: resumed.last!.1.token) == resumed.last!.1)
            #expect(FeedCursor(token: "garbage!") == nil)
        }
    }
}

@Suite struct SubmitSuggestionTests {
    @Test func storesOnceAndValidates() async throws {
        try await IntakeHarness.run("suggest") { intake in
            let request = Kangyi_Intake_V1_SubmitSuggestionRequest.with {
                $0.requestID = "s1"
                $0.category = "transport"
                $0.text = "建议增加夜间送药专线"
            }
            let first = try await intake.service.submitSuggestion(request: request, context: .testing)
            let again = try await intake.service.submitSuggestion(request: request, context: .testing)
            #expect(!first.replayed && again.replayed && first.id == again.id)
            var changed = request
            changed.text = "别的建议"
            await #expect { try await intake.service.submitSuggestion(request: changed, context: .testing) }
                throws: { ($0 as? ServiceError)?.reason == "REQUEST_ID_REUSED" }
            var bad = request
            bad.requestID = "s2"
            bad.text = ""
            bad.district = "999999"
            await #expect { try await intake.service.submitSuggestion(request: bad, context: .testing) } throws: {
                Set(($0 as? ServiceError)?.violations.map(\.field) ?? []) == ["text", "district"]
            }
            #expect(try await intake.count("SELECT count(*)::int FROM intake.suggestions") == 1)
        }
    }
}
