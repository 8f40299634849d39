import Foundation
import KangyiAPI
import KangyiPlatform

/// Checks a `SubmitHelpRequestRequest` field by field and turns it into a ``NewHelpRequest``. Every
/// problem is reported at once, as BadRequest field violations, so a form can mark all its fields.
struct SubmissionValidator: Sendable {
    static let maxDescriptionScalars = 4000
    static let maxNameScalars = 100
    static let maxAddressScalars = 500

    let reference: ReferenceData

    func validate(_ request: Kangyi_Intake_V1_SubmitHelpRequestRequest, caller: String) throws -> NewHelpRequest {
        var violations: [ServiceError.FieldViolation] = []
        func refuse(_ field: String, _ reason: String, _ description: String) {
            violations.append(.init(field: field, reason: reason, description: description))
        }

        if !RequestID.isWellFormed(request.requestID) {
            refuse("request_id", "INVALID_REQUEST_ID", "required: 1-128 printable ASCII characters, reused on retry")
        }
        if request.category.isEmpty {
            refuse("category", "MISSING_CATEGORY", "required: one of \(reference.categories.map(\.code).joined(separator: ", "))")
        } else if reference.category(request.category) == nil {
            refuse("category", "UNKNOWN_CATEGORY", "unknown category; one of \(reference.categories.map(\.code).joined(separator: ", "))")
        }
        if request.district.isEmpty {
            refuse("district", "MISSING_DISTRICT", "required: a district code such as 420106")
        } else if reference.district(request.district) == nil {
            refuse("district", "UNKNOWN_DISTRICT", "unknown district code")
        }

        let phone: String?
        if !request.hasContact || request.contact.phone.trimmingSpaces.isEmpty {
            refuse("contact.phone", "MISSING_CONTACT", "required: a mainland mobile number to call back")
            phone = nil
        } else {
            phone = Phone.normalize(request.contact.phone)
            if phone == nil {
                refuse("contact.phone", "INVALID_PHONE", "must be a mainland mobile number: 11 digits starting 13-19, optionally +86")
            }
        }
        let name = String(request.contact.name.trimmingSpaces)
        if name.unicodeScalars.count > Self.maxNameScalars {
            refuse("contact.name", "NAME_TOO_LONG", "at most \(Self.maxNameScalars) characters")
        }
        let address = String(request.contact.address.trimmingSpaces)
        if address.unicodeScalars.count > Self.maxAddressScalars {
            refuse("contact.address", "ADDRESS_TOO_LONG", "at most \(Self.maxAddressScalars) characters")
        }

        let description = String(request.description_p.trimmingSpaces)
        let length = description.unicodeScalars.count
        if length == 0 {
            refuse("description", "MISSING_DESCRIPTION", "required: 1-\(Self.maxDescriptionScalars) characters")
        } else if length > Self.maxDescriptionScalars {
            refuse("description", "DESCRIPTION_TOO_LONG", "at most \(Self.maxDescriptionScalars) characters, got \(length)")
        }

        var location: NewHelpRequest.Location?
        if request.hasLocation {
            let point = request.location
            if !(point.latitude.isFinite && (-90...90).contains(point.latitude)) {
                refuse("location.latitude", "LATITUDE_OUT_OF_RANGE", "must be between -90 and 90")
            }
            if !(point.longitude.isFinite && (-180...180).contains(point.longitude)) {
                refuse("location.longitude", "LONGITUDE_OUT_OF_RANGE", "must be between -180 and 180")
            }
            location = .init(latitude: point.latitude, longitude: point.longitude)
        }

        var groups = Set<SpecialGroup>()
        for (index, group) in request.specialGroups.enumerated() {
            guard let known = SpecialGroup(group) else {
                refuse("special_groups[\(index)]", "UNKNOWN_SPECIAL_GROUP", "not a known special group")
                continue
            }
            groups.insert(known)
        }
        guard let urgency = Urgency(request.urgency) else {
            refuse("urgency", "UNKNOWN_URGENCY", "not a known urgency")
            throw ServiceError.invalidArgument(violations)
        }

        guard violations.isEmpty, let phone else { throw ServiceError.invalidArgument(violations) }
        return NewHelpRequest(
            id: UUID(), requestID: request.requestID, caller: caller, category: request.category,
            district: request.district, phone: phone, contactName: name, address: address,
            description: description, location: location, specialGroups: groups.sorted(), urgency: urgency)
    }
}

extension SpecialGroup {
    init?(_ wire: Kangyi_Intake_V1_SpecialGroup) {
        switch wire {
        case .pregnant: self = .pregnant
        case .elderly: self = .elderly
        case .disabled: self = .disabled
        case .livingAlone: self = .livingAlone
        case .child: self = .child
        case .chronicIllness: self = .chronicIllness
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    var wire: Kangyi_Intake_V1_SpecialGroup {
        switch self {
        case .pregnant: .pregnant
        case .elderly: .elderly
        case .disabled: .disabled
        case .livingAlone: .livingAlone
        case .child: .child
        case .chronicIllness: .chronicIllness
        }
    }
}

extension Urgency {
    init?(_ wire: Kangyi_Intake_V1_Urgency) {
        switch wire {
        case .unspecified, .routine: self = .routine
        case .urgent: self = .urgent
        case .critical: self = .critical
        case .UNRECOGNIZED: return nil
        }
    }

    var wire: Kangyi_Intake_V1_Urgency {
        switch self {
        case .routine: .routine
        case .urgent: .urgent
        case .critical: .critical
        }
    }
}

extension HelpRequestStatus {
    var wire: Kangyi_Intake_V1_HelpRequestStatus {
        switch self {
        case .submitted: .submitted
        case .verified: .verified
        case .rejected: .rejected
        case .duplicate: .duplicate
        case .assigned: .assigned
        case .resolved: .resolved
        case .closed: .closed
        }
    }
}
