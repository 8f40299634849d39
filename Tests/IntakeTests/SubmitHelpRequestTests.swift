import Foundation
import GRPCCore
import KangyiAPI
@testable import KangyiIntake
import KangyiPlatform
import KangyiTestSupport
import Testing

/// SubmitHelpRequest on real PostgreSQL: durability, idempotency, repeats, group commit.
@Suite struct SubmitHelpRequestTests {
    @Test func storesAndAnswersWithATicket() async throws {
        try await IntakeHarness.run("submit") { intake in
            let answer = try await intake.submit(submission())
            let request = answer.helpRequest
            #expect(!answer.replayed)
            #expect(request.ticket.hasPrefix("KY") && request.ticket.count == 16)
            #expect(request.status == .submitted)
            #expect(request.contact.phone == "13812345678")
            #expect(request.priority == 30 + 35)  // urgent + elderly 20 + living alone 15
            #expect(request.greenChannel)
            #expect(try await intake.count() == 1)
        }
    }

    @Test func aRejectedRequestLeavesNothingBehind() async throws {
        try await IntakeHarness.run("reject") { intake in
            var bad = submission()
            bad.contact.phone = "not a phone"
            await #expect { try await intake.submit(bad) } throws: { ($0 as? ServiceError)?.code == .invalidArgument }
            let rows = try await intake.count()
            #expect(rows == 0)
        }
    }

    @Test func aRetryReturnsTheOriginalAndStoresNothingNew() async throws {
        try await IntakeHarness.run("idempotent") { intake in
            let first = try await intake.submit(submission("retry-1"))
            let again = try await intake.submit(submission("retry-1"))
            #expect(again.replayed)
            #expect(again.helpRequest.id == first.helpRequest.id)
            #expect(again.helpRequest.ticket == first.helpRequest.ticket)
            #expect(try await intake.count() == 1)
            // Another caller may use the same request_id for its own request.
            let other = try await intake.submit(submission("retry-1"), caller: "another-system")
            #expect(!other.replayed)
            #expect(try await intake.count() == 2)
        }
    }

    @Test func theSameIdWithOtherContentIsRefusedWithAStableReason() async throws {
        try await IntakeHarness.run("reuse") { intake in
            _ = try await intake.submit(submission("reused"))
            await #expect {
                try await intake.submit(submission("reused", description: "完全不同的求助内容"))
            } throws: { error in
                let error = error as? ServiceError
                return error?.code == .alreadyExists && error?.reason == "REQUEST_ID_REUSED"
            }
            #expect(try await intake.count() == 1)
        }
    }

    @Test func concurrentDuplicateSendsStoreOneRow() async throws {
        try await IntakeHarness.run("concurrentdup") { intake in
            let answers = try await withThrowingTaskGroup(of: Kangyi_Intake_V1_SubmitHelpRequestResponse.self) { group in
                for _ in 0..<50 { group.addTask { try await intake.submit(submission("same-id")) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(answers.map(\.helpRequest.id)).count == 1)
            #expect(answers.filter { !$0.replayed }.count == 1)
            #expect(try await intake.count() == 1)
        }
    }

    @Test func groupCommitStoresExactlyNAndEveryTicketExists() async throws {
        try await IntakeHarness.run("groupcommit") { intake in
            let n = 300
            let answers = try await withThrowingTaskGroup(of: Kangyi_Intake_V1_SubmitHelpRequestResponse.self) { group in
                for index in 0..<n {
                    group.addTask {
                        // distinct phones and texts: no repeats, so every answer is a new row
                        try await intake.submit(submission(
                            "burst-\(index)", phone: "139\(String(format: "%08d", index))",
                            description: "第\(index)号求助：\(RequestID.mint())"))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.count == n)
            #expect(Set(answers.map(\.helpRequest.ticket)).count == n)
            #expect(try await intake.count() == n)
            let tickets = answers.map { "'\($0.helpRequest.ticket)'" }.joined(separator: ",")
            #expect(try await intake.count("SELECT count(*)::int FROM intake.help_requests WHERE ticket IN (\(tickets))") == n)
        }
    }

    @Test func samePhoneAndCategoryIsLinkedAsARepeatAndRaisesTheOriginal() async throws {
        try await IntakeHarness.run("repeats") { intake in
            let original = try await intake.submit(submission(description: "需要买降压药")).helpRequest
            let again = try await intake.submit(submission(description: "还是没有买到降压药，请帮忙")).helpRequest
            #expect(again.repeatOf == original.id)
            let third = try await intake.submit(submission(phone: "+86 138 1234 5678", description: "第三次求助")).helpRequest
            #expect(third.repeatOf == original.id)  // linked to the original, not to the repeat

            let stored = try await intake.service.getHelpRequest(request: .with { $0.id = original.id }, context: .testing)
            #expect(stored.helpRequest.repeatCount == 2)
            #expect(stored.helpRequest.priority == original.priority + 2 * Int32(Priority.perRepeat))
            // A different category is a different need, not a repeat.
            let other = try await intake.submit(submission(category: "medical", description: "需要看病")).helpRequest
            #expect(other.repeatOf.isEmpty)
            #expect(try await intake.count() == 4)  // repeats are stored, never dropped
        }
    }

    @Test func nearIdenticalTextFromAnotherPhoneIsARepeat() async throws {
        try await IntakeHarness.run("similartext") { intake in
            let text = "中原区中山路小区封控第三天，全楼二十户人家缺少蔬菜和大米，请尽快安排配送"
            let original = try await intake.submit(submission(phone: "13800000001", description: text)).helpRequest
            let similar = try await intake.submit(submission(phone: "13800000002", description: text + "。")).helpRequest
            #expect(similar.repeatOf == original.id)
            let different = try await intake.submit(submission(phone: "13800000003", description: "孩子发烧需要就医")).helpRequest
            #expect(different.repeatOf.isEmpty)
        }
    }

    /// Repeat detection compares stored trigrams, not the texts: it must link exactly the pairs pg_trgm's
    /// own similarity() puts at 0.8 or more. Pairs of random Chinese texts, the second with 0–4 characters
    /// changed, straddle the threshold (one change out of 40 is ~0.87, two ~0.75).
    @Test func textRepeatsAreExactlyPgTrgmSimilarityAtLeast08() async throws {
        try await IntakeHarness.run("trigrams") { intake in
            var random = SplitMix64(seed: 2020)
            func text(_ count: Int) -> [Character] {
                (0..<count).map { _ in Character(Unicode.Scalar(0x4E00 + UInt32(random.next() % 0x51A5))!) }
            }
            var linked = 0, unlinked = 0
            for pair in 0..<12 {
                var words = text(40)
                let original = try await intake.submit(submission(phone: "1380000\(1000 + 2 * pair)", description: String(words)))
                for _ in 0..<(pair % 5) { words[Int(random.next() % 40)] = text(1)[0] }
                if pair % 3 == 0 { words.insert(contentsOf: "，请帮忙 ", at: 20) }  // words, punctuation
                let variant = try await intake.submit(submission(phone: "1380000\(1001 + 2 * pair)", description: String(words)))
                let expected = try await intake.similarity(original.helpRequest.description_p, variant.helpRequest.description_p)
                #expect((variant.helpRequest.repeatOf == original.helpRequest.id) == (expected >= IntakeStore.textSimilarity),
                        "pair \(pair): pg_trgm similarity \(expected)")
                if expected >= IntakeStore.textSimilarity { linked += 1 } else { unlinked += 1 }
            }
            #expect(linked >= 3 && unlinked >= 3)  // both sides of the threshold were tried
        }
    }

    @Test func aTextStoredBeforeSignaturesIsComparedInFull() async throws {
        try await IntakeHarness.run("nosignature") { intake in
            let original = try await intake.submit(submission(phone: "13800002000", description: "小区封控三天了，家里没有米面油，老人行动不便"))
            // As a row stored before migration 7 is: no signature, no count.
            _ = try await intake.count(
                "WITH u AS (UPDATE intake.help_requests SET description_signature = NULL, description_trigram_count = NULL RETURNING 1) SELECT count(*)::int FROM u")
            let variant = try await intake.submit(submission(phone: "13800002001", description: "小区封控三天了，家里没有米面油，老人行动不便！"))
            #expect(variant.helpRequest.repeatOf == original.helpRequest.id)
        }
    }

    @Test func aRowWrittenWithoutTrigramsGetsThemAndIsFoundAsRepeated() async throws {
        try await IntakeHarness.run("oldwriter") { intake in
            // As the previous version's INSERT writes a row (a replica mid-way through a rolling update).
            let text = "社区团购的菜一直没送到，家里两位老人需要蔬菜和鸡蛋"
            let stored = try await intake.count("""
                WITH n AS (
                    INSERT INTO intake.help_requests (id, ticket, caller, request_id, content_hash, category, district,
                        phone, description, urgency, priority, green_channel)
                    VALUES (gen_random_uuid(), 'KY-OLD-1', 'old-writer', 'old-1', 'h', 'food_supply', '410102',
                        '13800003000', '\(text)', 'urgent', 30, false)
                    RETURNING description_trigrams = intake.trigrams(description) AND description_signature IS NOT NULL
                        AND description_trigram_count = icount(description_trigrams) AS filled)
                SELECT count(*)::int FROM n WHERE filled
                """)
            #expect(stored == 1)
            let variant = try await intake.submit(submission(phone: "13800003001", description: text + "。"))
            #expect(!variant.helpRequest.repeatOf.isEmpty)
        }
    }

    @Test func repeatsWithinOneBatchAreLinkedToo() async throws {
        try await IntakeHarness.run("batchrepeats") { intake in
            let answers = try await withThrowingTaskGroup(of: Kangyi_Intake_V1_HelpRequest.self) { group in
                for index in 0..<20 {
                    group.addTask { try await intake.submit(submission("same-phone-\(index)", description: "求助\(index)")).helpRequest }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let originals = answers.filter { $0.repeatOf.isEmpty }
            #expect(originals.count == 1)
            #expect(answers.allSatisfy { $0.repeatOf.isEmpty || $0.repeatOf == originals[0].id })
            let stored = try await intake.service.getHelpRequest(request: .with { $0.id = originals[0].id }, context: .testing)
            #expect(stored.helpRequest.repeatCount == 19)
        }
    }
}

@Suite struct LookupAndGetTests {
    @Test func aCitizenFindsTheirRequestWithTicketAndPhone() async throws {
        try await IntakeHarness.run("lookup") { intake in
            let filed = try await intake.submit(submission()).helpRequest
            let found = try await intake.service.lookupHelpRequest(
                request: .with { $0.ticket = filed.ticket; $0.phone = "+86 138-1234-5678" }, context: .testing)
            #expect(found.helpRequest.id == filed.id)
            #expect(found.helpRequest.contact.phone == "138****5678")  // no personal-data scope: masked
            #expect(found.helpRequest.contact.address.isEmpty)
        }
    }

    @Test func aWrongPhoneAndAnUnknownTicketAnswerAlike() async throws {
        try await IntakeHarness.run("lookupmiss") { intake in
            let filed = try await intake.submit(submission()).helpRequest
            func failure(_ ticket: String, _ phone: String) async -> String? {
                do {
                    _ = try await intake.service.lookupHelpRequest(
                        request: .with { $0.ticket = ticket; $0.phone = phone }, context: .testing)
                    return nil
                } catch { return "\(error)" }
            }
            let wrongPhone = await failure(filed.ticket, "13900000000")
            let unknownTicket = await failure("KY26010199999999", "13812345678")
            let garbage = await failure("x", "y")
            #expect(wrongPhone != nil)
            #expect(wrongPhone == unknownTicket)
            #expect(wrongPhone == garbage)
        }
    }

    @Test func staffReadByIdWithOrWithoutThePersonalDataScope() async throws {
        try await IntakeHarness.run("get") { intake in
            let filed = try await intake.submit(submission()).helpRequest
            let masked = try await intake.service.getHelpRequest(request: .with { $0.id = filed.id }, context: .testing)
            #expect(masked.helpRequest.contact.phone == "138****5678")
            let full = try await CallerIdentity.$current.withValue(.init(requestID: "r", scopes: [Scope.personalData])) {
                try await intake.service.getHelpRequest(request: .with { $0.id = filed.id }, context: .testing)
            }
            #expect(full.helpRequest.contact.phone == "13812345678")
            await #expect { try await intake.service.getHelpRequest(request: .with { $0.id = "nope" }, context: .testing) }
                throws: { ($0 as? ServiceError)?.code == .invalidArgument }
            await #expect {
                try await intake.service.getHelpRequest(request: .with { $0.id = "00000000-0000-0000-0000-000000000000" }, context: .testing)
            } throws: { ($0 as? ServiceError)?.code == .notFound }
        }
    }
}

@Suite struct ListCategoriesTests {
    @Test func listsTheSeedCategoriesInDisplayOrder() async throws {
        try await IntakeHarness.run("categories") { intake in
            let response = try await intake.service.listCategories(request: .init(), context: .testing)
            #expect(response.categories.map(\.code) == [
                "epidemic_policy", "transport", "medical", "education", "food_supply", "health_code", "other",
            ])
            #expect(response.categories.first { $0.code == "food_supply" }?.name == "生活物资")
        }
    }
}

/// `SubmissionBatches` on its own: what a batch answers item by item, and two replicas racing.
@Suite struct SubmissionBatchTests {
    func item(_ requestID: String, description: String = "需要送药", phone: String = "13812345678") -> NewHelpRequest {
        NewHelpRequest(
            id: UUID(), requestID: requestID, caller: "batch-caller", category: "medical", district: "410102",
            phone: phone, contactName: "", address: "", description: description, location: nil,
            specialGroups: [], urgency: .routine)
    }

    @Test func eachItemIsAnsweredAsIfSentAloneEvenWithItsIdTwiceInTheBatch() async throws {
        try await IntakeHarness.run("batchitems") { intake in
            let batches = SubmissionBatches(client: intake.client, logger: TestDatabase.logger)
            let stored = item("k1", description: "原来的内容")
            guard case .success(.created(let original))? = try await batches.commit([stored]).first else {
                Issue.record("the first commit did not create its row")
                return
            }
            // k1 again with other content (refused), k1 with the stored content (a retry), and k2 twice:
            // new, then a retry of the item just before it.
            let fresh = item("k2", phone: "13900000001")
            var freshAgain = fresh
            freshAgain.id = UUID()
            let answers = try await batches.commit([
                item("k1", description: "别的内容"), { var again = stored; again.id = UUID(); return again }(), fresh, freshAgain,
            ])
            #expect(throws: ServiceError.self) { try answers[0].get() }
            #expect((try? answers[1].get()) == .replayed(original))
            guard case .success(.created(let created)) = answers[2] else {
                Issue.record("k2 was not created: \(answers[2])")
                return
            }
            #expect(created.id == fresh.id)
            #expect((try? answers[3].get()) == .replayed(created))
            #expect(try await intake.count() == 2)
        }
    }

    /// A created item's answer is built from what it sent and what the batch call answered (the row
    /// itself is not read back): it must equal the stored row, also for an original that a later item of
    /// the same batch repeats (its repeat count and priority rise within the batch).
    @Test func everyCreatedAnswerIsTheRowAsStored() async throws {
        try await IntakeHarness.run("batchanswers") { intake in
            let batches = SubmissionBatches(client: intake.client, logger: TestDatabase.logger)
            var located = item("a1", description: "老人需要降压药", phone: "13900000011")
            located.location = .init(latitude: 34.7466, longitude: 113.6253)
            located.specialGroups = [.elderly, .disabled]
            located.urgency = .urgent
            var again = item("a2", description: "再次求助：老人需要降压药", phone: "13900000011")
            again.contactName = "王"
            again.address = "金水路 1 号"
            let other = item("a3", description: "需要蔬菜", phone: "13900000012")
            let answers = try await batches.commit([located, again, other])
            let store = IntakeStore(client: intake.client, logger: TestDatabase.logger)
            for answer in answers {
                guard case .success(.created(let answered)) = answer else {
                    Issue.record("not created: \(answer)")
                    continue
                }
                #expect(try await store.helpRequest(id: answered.id) == answered)
            }
            guard case .success(.created(let original)) = answers[0], case .success(.created(let linked)) = answers[1] else { return }
            #expect(linked.repeatOf == original.id)
            #expect(original.repeatCount == 1)
        }
    }

    @Test func twoReplicasRacingTheSameRequestsStoreEachOnce() async throws {
        try await IntakeHarness.run("batchrace") { intake in
            // Two committers on their own connections, as two replicas of the service would be.
            let replicas = [0, 1].map { _ in SubmissionBatches(client: intake.client, logger: TestDatabase.logger) }
            let items = (0..<40).map { item("race-\($0)", description: "第\($0)号", phone: "1390000\(String(format: "%04d", $0))") }
            let answers = try await withThrowingTaskGroup(of: [Result<SubmitOutcome, any Error>].self) { group in
                for replica in replicas {
                    for chunk in stride(from: 0, to: items.count, by: 8) {
                        // Each replica's copy has its own id, as each would mint one.
                        let copies = items[chunk..<chunk + 8].map { var copy = $0; copy.id = UUID(); return copy }
                        group.addTask { try await replica.commit(copies) }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let outcomes = try answers.map { try $0.get() }
            #expect(outcomes.count == 80)
            #expect(outcomes.filter { if case .created = $0 { true } else { false } }.count == 40)
            #expect(try await intake.count() == 40)
        }
    }
}
