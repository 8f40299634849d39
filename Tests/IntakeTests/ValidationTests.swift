import KangyiAPI
@testable import KangyiIntake
import KangyiPlatform
import Testing

@Suite struct PhoneTests {
    @Test(arguments: [
        ("13812345678", "13812345678"), ("+86 138 1234 5678", "13812345678"), ("+86-138-1234-5678", "13812345678"),
        ("0086 13812345678", "13812345678"), ("8613812345678", "13812345678"), ("(138) 1234-5678", "13812345678"),
        (" 19912345678 ", "19912345678"), ("\u{3000}138.1234.5678", "13812345678"),
    ])
    func normalizesMainlandMobiles(raw: String, expected: String) {
        #expect(Phone.normalize(raw) == expected)
    }

    @Test(arguments: ["", "12812345678", "1381234567", "138123456789", "027-8765-4321", "+1 415 555 0100", "138abc45678", "１３８１２３４５６７８",
        "1\u{301}3812345678", "13812345678\n", "+8613812345678\u{200B}", "١٣٨١٢٣٤٥٦٧٨"])
    func refusesEverythingElse(raw: String) {
        #expect(Phone.normalize(raw) == nil)
    }

    @Test func masksTheMiddle() {
        #expect(Phone.mask("13812345678") == "138****5678")
    }
}

@Suite struct PriorityTests {
    @Test func formula() {
        #expect(Priority.of(urgency: .routine, groups: [], repeats: 0) == 10)
        #expect(Priority.of(urgency: .urgent, groups: [.pregnant], repeats: 0) == 55)
        // groups are capped at 40, repeats at 20
        #expect(Priority.of(urgency: .critical, groups: [.pregnant, .elderly, .disabled], repeats: 9) == 60 + 40 + 20)
        #expect(Priority.of(urgency: .routine, groups: [], repeats: 2) == 20)
        #expect(Priority.effective(priority: 10, waitedSeconds: 3 * 3600 + 5) == 13)
        #expect(Priority.effective(priority: 10, waitedSeconds: 100 * 3600) == 34)
    }

    @Test func greenChannel() {
        #expect(Priority.isGreenChannel([.pregnant]))
        #expect(Priority.isGreenChannel([.child, .livingAlone]))
        #expect(!Priority.isGreenChannel([.child, .chronicIllness]))
        #expect(!Priority.isGreenChannel([]))
    }
}

@Suite struct SubmissionValidatorTests {
    let validator = SubmissionValidator(
        reference: ReferenceData(
            districts: [.init(code: "410102", name: "中原区", nameEn: "Zhongyuan", kind: .urban)],
            departments: [.init(code: "commerce", name: "市商务局", nameEn: "Commerce Bureau")],
            categories: [.init(code: "food_supply", name: "生活物资", nameEn: "Food supply", defaultDepartment: "commerce")]))

    func violations(_ change: (inout Kangyi_Intake_V1_SubmitHelpRequestRequest) -> Void) -> [String: String] {
        var request = submission()
        change(&request)
        do {
            _ = try validator.validate(request, caller: "c")
            return [:]
        } catch let error as ServiceError {
            #expect(error.code == .invalidArgument)
            return Dictionary(uniqueKeysWithValues: error.violations.map { ($0.field, $0.reason) })
        } catch {
            Issue.record("unexpected \(error)")
            return [:]
        }
    }

    @Test func aValidSubmissionIsNormalized() throws {
        var request = submission()
        request.contact.phone = "+86 138-1234-5678"
        request.specialGroups = [.livingAlone, .elderly, .elderly]
        let valid = try validator.validate(request, caller: "c")
        #expect(valid.phone == "13812345678")
        #expect(valid.specialGroups == [.elderly, .livingAlone])
        #expect(valid.urgency == .urgent)
    }

    @Test func eachFieldIsNamedWithItsReason() {
        #expect(violations { $0.contact.phone = "12345" } == ["contact.phone": "INVALID_PHONE"])
        #expect(violations { $0.clearContact() } == ["contact.phone": "MISSING_CONTACT"])
        #expect(violations { $0.category = "weather" } == ["category": "UNKNOWN_CATEGORY"])
        #expect(violations { $0.district = "110101" } == ["district": "UNKNOWN_DISTRICT"])
        #expect(violations { $0.requestID = "" } == ["request_id": "INVALID_REQUEST_ID"])
        #expect(violations { $0.description_p = "   " } == ["description": "MISSING_DESCRIPTION"])
        #expect(violations { $0.location = .with { $0.latitude = 91; $0.longitude = 114.3 } } == ["location.latitude": "LATITUDE_OUT_OF_RANGE"])
        #expect(violations { $0.location = .with { $0.latitude = 30.5; $0.longitude = -181 } } == ["location.longitude": "LONGITUDE_OUT_OF_RANGE"])
        #expect(violations { $0.specialGroups = [.init(rawValue: 99)!] } == ["special_groups[0]": "UNKNOWN_SPECIAL_GROUP"])
    }

    @Test func allViolationsAreReportedTogether() {
        let found = violations {
            $0.contact.phone = "x"
            $0.category = "nope"
            $0.description_p = ""
        }
        #expect(Set(found.keys) == ["contact.phone", "category", "description"])
    }

    @Test func descriptionLengthCountsUnicodeScalars() throws {
        // 4000 Chinese characters are 12000 UTF-8 bytes but 4000 scalars: accepted.
        #expect(violations { $0.description_p = String(repeating: "疫", count: 4000) }.isEmpty)
        #expect(violations { $0.description_p = String(repeating: "疫", count: 4001) } == ["description": "DESCRIPTION_TOO_LONG"])
    }
}
