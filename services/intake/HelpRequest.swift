import Foundation
import KangyiPlatform

/// The intake domain, free of wire types: what a valid submission is, and what is stored.

enum Urgency: String, Sendable, CaseIterable {
    case routine, urgent, critical
}

enum SpecialGroup: String, Sendable, CaseIterable, Comparable {
    case pregnant, elderly, disabled
    case livingAlone = "living_alone"
    case child
    case chronicIllness = "chronic_illness"

    static func < (a: SpecialGroup, b: SpecialGroup) -> Bool { a.rawValue < b.rawValue }
}

/// The public status; the verification service moves it through `TransitionHelpRequest`.
enum HelpRequestStatus: String, Sendable, CaseIterable {
    case submitted, verified, rejected, duplicate, assigned, resolved, closed
}

/// A submission that passed validation, normalised (phone digits only, groups sorted and unique).
struct NewHelpRequest: Sendable, Equatable {
    var id: UUID
    var requestID: String
    var caller: String
    var category: String
    var district: String
    var phone: String
    var contactName: String
    var address: String
    var description: String
    var location: Location?
    var specialGroups: [SpecialGroup]
    var urgency: Urgency

    struct Location: Sendable, Equatable {
        var latitude: Double
        var longitude: Double
    }

    /// Everything the caller chose: the same request_id must come with the same content. (The id is
    /// ours, not the caller's, so it is left out.)
    var contentHash: String {
        var hash = ContentHash()
        hash.field(category)
        hash.field(district)
        hash.field(phone)
        hash.field(contactName)
        hash.field(address)
        hash.field(description)
        hash.field(location.map { "\($0.latitude),\($0.longitude)" } ?? "")
        hash.field(specialGroups.map(\.rawValue))
        hash.field(urgency.rawValue)
        return hash.hex()
    }
}

/// A help request as stored.
struct StoredHelpRequest: Sendable, Equatable {
    var id: UUID
    var ticket: String
    var category: String
    var district: String
    var phone: String
    var contactName: String
    var address: String
    var description: String
    var location: NewHelpRequest.Location?
    var specialGroups: [SpecialGroup]
    var urgency: Urgency
    var status: HelpRequestStatus
    var priority: Int
    var greenChannel: Bool
    var repeatOf: UUID?
    var repeatCount: Int
    var createdAt: Date
    var updatedAt: Date
}

/// What a submission came to.
enum SubmitOutcome: Sendable, Equatable {
    /// Newly stored (and committed).
    case created(StoredHelpRequest)
    /// The same request_id with the same content was stored before: the original.
    case replayed(StoredHelpRequest)
}
