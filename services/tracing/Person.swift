import Foundation
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// A person's details as a caller gave them, checked and normalised (phone: 11 digits; ID number: upper
/// case). Lives in memory only: the store seals it before it reaches a table.
struct PersonDetails: Sendable, Equatable {
    var name: String?
    var phone: String?
    var idNumber: String?
    var address: String?
    var district: String?

    var isEmpty: Bool { phone == nil && idNumber == nil && name == nil && address == nil }

    /// Checks a wire person; every bad field is named under `field` (e.g. `contacts[2].person.id_number`).
    /// `reachable`: a phone or an ID number is required (a contact must be findable).
    static func check(
        _ wire: Kangyi_Tracing_V1_PersonDetails, field: String, reachable: Bool, reference: ReferenceData,
        _ violations: inout FieldViolations
    ) -> PersonDetails {
        var details = PersonDetails()
        violations.checkText(wire.name, field: "\(field).name", required: false, limit: 100)
        violations.checkText(wire.address, field: "\(field).address", required: false, limit: 500)
        details.name = Self.present(wire.name)
        details.address = Self.present(wire.address)
        if !wire.phone.isEmpty {
            details.phone = Phone.normalize(wire.phone)
            // The value is never echoed: it is personal data.
            if details.phone == nil { violations.add("\(field).phone", "INVALID_PHONE", "not a mainland mobile number") }
        }
        if !wire.idNumber.isEmpty {
            switch ResidentID.normalize(wire.idNumber) {
            case .success(let number): details.idNumber = number
            case .failure(let problem): violations.add("\(field).id_number", problem.reason, problem.description)
            }
        }
        violations.checkDistrict(wire.district, in: reference, required: false, field: "\(field).district")
        details.district = wire.district.isEmpty ? nil : wire.district
        if reachable && wire.phone.isEmpty && wire.idNumber.isEmpty {
            violations.add(field, "PHONE_OR_ID_NUMBER_REQUIRED", "a phone or a resident ID number is required")
        }
        return details
    }

    private static func present(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// The details of `other` fill what this one lacks (a person listed again with more about them).
    func filling(from other: PersonDetails) -> PersonDetails {
        PersonDetails(
            name: name ?? other.name, phone: phone ?? other.phone, idNumber: idNumber ?? other.idNumber,
            address: address ?? other.address, district: district ?? other.district)
    }
}

/// A stored person, opened.
struct PersonRecord: Sendable {
    var id: UUID
    var details: PersonDetails
    var keyID: String
    var createdAt: Date

    /// Masked unless `unmasked` (the caller holds pii.read and gave a reason, which the service logged).
    func wire(unmasked: Bool) -> Kangyi_Tracing_V1_Person {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.district = details.district ?? ""
            $0.createTime = Google_Protobuf_Timestamp(date: createdAt)
            $0.masked = !unmasked
            if unmasked {
                $0.name = details.name ?? ""
                $0.phone = details.phone ?? ""
                $0.idNumber = details.idNumber ?? ""
                $0.address = details.address ?? ""
            } else {
                $0.name = details.name.map(Masks.name) ?? ""
                $0.phone = details.phone.map(Phone.mask) ?? ""
                $0.idNumber = details.idNumber.map(ResidentID.mask) ?? ""
                $0.address = details.address.map(Masks.text) ?? ""
            }
        }
    }
}

/// How personal data looks to a caller without the personal-data scope.
enum Masks {
    /// "张三" → "张*", "欧阳娜娜" → "欧***".
    static func name(_ name: String) -> String {
        guard let first = name.first else { return "" }
        return String(first) + String(repeating: "*", count: max(1, name.count - 1))
    }

    /// Addresses, quarantine places and notes: nothing of them.
    static func text(_ text: String) -> String { text.isEmpty ? "" : "***" }
}
