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
        var violations = FieldViolations()
        let refuse = { (field: String, reason: String, description: String) in violations.add(field, reason, description) }

        violations.checkRequestID(request.requestID, field: "request_id")
        violations.checkCategory(request.category, in: reference, required: true)
        violations.checkDistrict(request.district, in: reference, required: true)

        let phone: String?
        if !request.hasContact || request.contact.phone.trimmingSpaces.isEmpty {
            refuse("contact.phone", "MISSING_CONTACT", "required: a mainland mobile number to call back")
            phone = nil
        } else {
            phone = violations.checkPhone(request.contact.phone, field: "contact.phone")
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
        let urgency = Urgency(request.urgency)
        if urgency == nil { refuse("urgency", "UNKNOWN_URGENCY", "not a known urgency") }

        try violations.throwIfAny()
        guard let phone, let urgency else { throw ServiceError.invalidArgument(violations.all) }
        return NewHelpRequest(
            id: UUID(), requestID: request.requestID, caller: caller, category: request.category,
            district: request.district, phone: phone, contactName: name, address: address,
            description: description, location: location, specialGroups: groups.sorted(), urgency: urgency)
    }
}

/// Phone checks, shared by submissions and suggestions.
extension FieldViolations {
    /// The normalised number, or nil (with a violation) if it is not a mainland mobile.
    mutating func checkPhone(_ raw: String, field: String) -> String? {
        let phone = Phone.normalize(raw)
        if phone == nil {
            add(field, "INVALID_PHONE", "must be a mainland mobile number: 11 digits starting 13-19, optionally +86")
        }
        return phone
    }
}
