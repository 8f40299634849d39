import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import Testing

@testable import KangyiTracing

/// Personal data at rest and in answers: sealed in every table, found through the blind index, masked
/// without the scope and a reason, every unmasked read logged, and readable across a key rotation.
@Suite struct PersonalDataTests {
    @Test func nothingPersonalIsReadableInAnyTracingTable() async throws {
        try await TracingHarness.run("pii_at_rest") { h in
            let caseID = try await h.newCase()
            let phone = randomPhone()
            let idNumber = residentID()
            let name = "王秀英"
            let address = "金水区花园路甲\(Int.random(in: 100..<999))号"
            let tasks = try await h.add(
                [.with {
                    $0.person = .with {
                        $0.name = name
                        $0.phone = phone
                        $0.idNumber = idNumber
                        $0.address = address
                        $0.district = "410105"
                    }
                    $0.relation = .household
                    $0.lastExposureDate = CalendarDay.of(Date())
                }], to: caseID)
            _ = try await asInvestigator("investigator-1") {
                try await h.service.recordCallAttempt(
                    request: .with {
                        $0.taskID = tasks[0]
                        $0.requestID = "call-1"
                        $0.outcome = .reached
                        $0.quarantine = .home
                        $0.quarantineLocation = address
                        $0.note = "本人 \(name) 电话 \(phone) 身份证 \(idNumber)"
                    }, context: .testing)
            }
            // Every column of every tracing table, as text (bytea as hex).
            let tables = try await h.client.query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'tracing'", logger: TestDatabase.logger)
            var names: [String] = []
            for try await table in tables.decode(String.self) { names.append(table) }
            #expect(names.count >= 7)
            for table in names {
                let dump = try await h.scalar("SELECT coalesce(string_agg(t::text, '|'), '') FROM tracing.\(table) t", as: String.self) ?? ""
                for secret in [phone, idNumber, name, address, String(phone.suffix(8))] {
                    #expect(!dump.contains(secret), "tracing.\(table) holds personal data in the clear")
                }
            }
            // And the note and the person still read back whole, with the scope and a reason.
            let task = try await asInvestigator("investigator-1") {
                try await h.service.getTask(request: .with { $0.taskID = tasks[0]; $0.reason = "follow-up call" }, context: .testing)
            }
            #expect(task.task.person.phone == phone)
            #expect(task.task.person.idNumber == idNumber)
            #expect(task.attempts.first?.note.contains(phone) == true)
        }
    }

    @Test func theSamePersonListedTwiceIsOnePersonAndAHouseholdPhoneIsNot() async throws {
        try await TracingHarness.run("pii_identity") { h in
            let first = try await h.newCase()
            let second = try await h.newCase()
            let idNumber = residentID()
            let phone = randomPhone()
            _ = try await h.add([contact(name: "李娜", phone: phone, idNumber: idNumber)], to: first)
            // Another case lists her by her ID number in lower case, with the phone written differently.
            let formatted = "+86 " + phone.prefix(3) + "-" + phone.dropFirst(3).prefix(4) + "-" + phone.suffix(4)
            _ = try await h.add([contact(name: "李娜", phone: String(formatted), idNumber: idNumber.lowercased())], to: second)
            // Her mother shares the phone and has no ID number given.
            _ = try await h.add([contact(name: "张桂兰", phone: phone)], to: first)
            // The mother again, on the second case: the same phone and name is the same person.
            _ = try await h.add([contact(name: "张桂兰", phone: phone)], to: second)

            let byID = try await asInvestigator("investigator-1") {
                try await h.service.findPerson(request: .with { $0.idNumber = idNumber; $0.reason = "duplicate check" }, context: .testing)
            }
            #expect(byID.persons.map(\.name) == ["李娜"])
            let byPhone = try await asInvestigator("investigator-1") {
                try await h.service.findPerson(request: .with { $0.phone = phone; $0.reason = "duplicate check" }, context: .testing)
            }
            #expect(Set(byPhone.persons.map(\.name)) == ["李娜", "张桂兰"])
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.persons WHERE district = '410102'") == 4)  // 2 index + 2
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.tasks") == 4)
            // Adding the same contact again is idempotent: the existing task, not created.
            let again = try await asInvestigator("investigator-0") {
                try await h.service.addContacts(
                    request: .with {
                        $0.caseID = first
                        $0.contacts = [contact(name: "李娜", phone: phone, idNumber: idNumber)]
                    }, context: .testing)
            }
            #expect(again.contacts.map(\.created) == [false])
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.tasks") == 4)
        }
    }

    @Test func answersAreMaskedWithoutTheScopeOrAReasonAndEveryUnmaskedReadIsLogged() async throws {
        try await TracingHarness.run("pii_masking") { h in
            let caseID = try await h.newCase()
            let phone = randomPhone()
            let idNumber = residentID()
            let tasks = try await h.add([contact(name: "赵敏", phone: phone, idNumber: idNumber)], to: caseID)
            let personID = try await asInvestigator("investigator-0") {
                try await h.service.getTask(request: .with { $0.taskID = tasks[0] }, context: .testing).task.person.id
            }
            func read(scopes: Set<String>, reason: String) async throws -> Kangyi_Tracing_V1_Person {
                try await asInvestigator("reader-\(scopes.count)", scopes: scopes) {
                    try await h.service.getPerson(request: .with { $0.personID = personID; $0.reason = reason }, context: .testing).person
                }
            }
            let noScope = try await read(scopes: [], reason: "curious")
            #expect(noScope.masked && noScope.name == "赵*" && noScope.phone == Phone.mask(phone))
            #expect(noScope.idNumber == ResidentID.mask(idNumber) && noScope.address == "***")
            let noReason = try await read(scopes: [Scope.personalData], reason: " ")
            #expect(noReason.masked && noReason.phone == Phone.mask(phone))
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.access_log") == 0)

            let open = try await read(scopes: [Scope.personalData], reason: "calling about a positive household test")
            #expect(!open.masked && open.phone == phone && open.idNumber == idNumber && open.name == "赵敏")
            let log = try await asInvestigator("supervisor-1") {
                try await h.service.listAccessLog(request: .with { $0.personID = personID }, context: .testing)
            }
            #expect(log.entries.count == 1)
            #expect(log.entries.first?.reader.caller == "reader-1")
            #expect(log.entries.first?.method == "GetPerson")
            #expect(log.entries.first?.reason == "calling about a positive household test")
            // Append-only.
            await #expect(throws: (any Error).self) { try await h.execute("UPDATE tracing.access_log SET reason = 'none'") }
            await #expect(throws: (any Error).self) { try await h.execute("DELETE FROM tracing.access_log") }
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.access_log") == 1)
        }
    }

    @Test func badPersonalDataIsNamedWithoutEchoingIt() async throws {
        try await TracingHarness.run("pii_validation") { h in
            let caseID = try await h.newCase()
            var badID = residentID()
            badID = String(badID.dropLast()) + (badID.last == "1" ? "2" : "1")
            let contacts = [
                contact(idNumber: badID),
                contact(phone: "12345"),
                .with { $0.person.name = "无联系方式"; $0.relation = .close; $0.lastExposureDate = "2026-02-30" },
                contact(relation: .unspecified, exposure: CalendarDay.of(Date().addingTimeInterval(3 * 86_400))),
            ]
            do {
                _ = try await h.add(contacts, to: caseID)
                Issue.record("bad contacts were accepted")
            } catch let error as ServiceError {
                #expect(error.code == .invalidArgument)
                #expect(Set(error.violations.map(\.field)) == [
                    "contacts[0].person.id_number", "contacts[1].person.phone", "contacts[2].person",
                    "contacts[2].last_exposure_date", "contacts[3].relation", "contacts[3].last_exposure_date",
                ])
                #expect(!error.message.contains(badID) && !error.message.contains("12345"))
            }
            #expect(try await h.scalar("SELECT count(*)::int FROM tracing.tasks") == 0)
            #expect(ResidentID.normalize(badID).failureReason == "ID_NUMBER_CHECKSUM")
        }
    }

    @Test func keyRotationReSealsEveryRowWhileReadsGoOn() async throws {
        let old = PersonalDataKeys.random()
        try await TracingHarness.run("pii_rotation", keys: old) { h in
            var taskIDs: [String] = []
            for _ in 0..<6 {
                let caseID = try await h.newCase()
                taskIDs += try await h.add((0..<50).map { _ in contact() }, to: caseID)
            }
            _ = try await asInvestigator("investigator-1") {
                try await h.service.recordCallAttempt(
                    request: .with {
                        $0.taskID = taskIDs[0]
                        $0.requestID = "r1"
                        $0.outcome = .noAnswer
                        $0.note = "无人接听"
                    }, context: .testing)
            }
            let before = try await asInvestigator("investigator-1") {
                try await h.service.getTask(request: .with { $0.taskID = taskIDs[7]; $0.reason = "rotation check" }, context: .testing)
            }
            // The new key, with the old one retired; the index key stays.
            let new = try PersonalDataKeys(current: .random(), retired: [old.current], indexKeyBase64: old.indexKeyBase64)
            let rotated = TracingHarness.harness(client: h.client, keys: new)
            let rotation = KeyRotation(client: h.client, keys: new, batch: 25, logger: TestDatabase.logger)
            let ids = taskIDs
            let reads = try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask { let done = try await rotation.run(); return done.persons * 1000 + done.attempts }
                group.addTask {
                    var count = 0
                    for id in ids.prefix(120) {
                        let task = try await asInvestigator("investigator-2") {
                            try await rotated.service.getTask(request: .with { $0.taskID = id; $0.reason = "reading during rotation" }, context: .testing)
                        }
                        #expect(!task.task.person.masked && task.task.person.phone.count == 11)
                        count += 1
                    }
                    return -count
                }
                var results: [Int] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(reads.contains(-120))
            // 300 contacts + 6 index persons, and the one attempt with a note.
            #expect(reads.contains(306 * 1000 + 1))
            #expect(try await rotation.rowsByKey() == [new.current.id: 307])
            // Once re-sealed, the new key alone reads everything, and the blind index still finds people.
            let alone = TracingHarness.harness(client: h.client, keys: try PersonalDataKeys(current: new.current, indexKeyBase64: old.indexKeyBase64))
            let after = try await asInvestigator("investigator-1") {
                try await alone.service.getTask(request: .with { $0.taskID = taskIDs[7]; $0.reason = "rotation check" }, context: .testing)
            }
            #expect(after.task.person == before.task.person)
            let found = try await asInvestigator("investigator-1") {
                try await alone.service.findPerson(request: .with { $0.phone = before.task.person.phone }, context: .testing)
            }
            #expect(found.persons.map(\.id) == [before.task.person.id])
            let note = try await asInvestigator("investigator-1") {
                try await alone.service.getTask(request: .with { $0.taskID = taskIDs[0]; $0.reason = "rotation check" }, context: .testing)
            }
            #expect(note.attempts.first?.note == "无人接听")
        }
    }

    @Test func sealedValuesDoNotOpenInAnotherRowOrUnderAnUnknownKey() throws {
        let keys = PersonalDataKeys.random()
        let sealed = keys.seal("13912345678", context: "person/a/phone")
        #expect(try keys.open(sealed, keyID: keys.current.id, context: "person/a/phone") == "13912345678")
        #expect(throws: PersonalDataError.tampered) { try keys.open(sealed, keyID: keys.current.id, context: "person/b/phone") }
        #expect(throws: PersonalDataError.unknownKey("0000")) { try keys.open(sealed, keyID: "0000", context: "person/a/phone") }
        #expect(keys.blindIndex("13912345678", kind: "phone") == keys.blindIndex("13912345678", kind: "phone"))
        #expect(keys.blindIndex("13912345678", kind: "phone") != PersonalDataKeys.random().blindIndex("13912345678", kind: "phone"))
        #expect(!"\(keys)".contains(keys.current.base64))
    }

    @Test func residentIDNumbersAreChecked() {
        #expect(ResidentID.normalize("11010519491231002x") == .success("11010519491231002X"))
        #expect(ResidentID.normalize("110105194912310021").failureReason == "ID_NUMBER_CHECKSUM")
        #expect(ResidentID.normalize("11010519491331002X").failureReason == "ID_NUMBER_BIRTH_DATE")
        #expect(ResidentID.normalize("1101051949123100").failureReason == "ID_NUMBER_LENGTH")
        #expect(ResidentID.normalize("11010519491231002Y").failureReason == "ID_NUMBER_CHARACTERS")
        #expect(ResidentID.mask("11010519491231002X") == "1101**********002X")
    }
}

extension Result where Failure == ResidentID.Problem {
    var failureReason: String? {
        if case .failure(let problem) = self { return problem.reason }
        return nil
    }
}
