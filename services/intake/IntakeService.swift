import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// `kangyi.intake.v1.IntakeService`: the RPCs, translating between the wire and the intake domain.
public struct IntakeService: Kangyi_Intake_V1_IntakeService.SimpleServiceProtocol {
    let store: any IntakeStore
    let reference: ReferenceDataCache

    init(store: any IntakeStore, reference: ReferenceDataCache) {
        self.store = store
        self.reference = reference
    }

    public func submitHelpRequest(
        request: Kangyi_Intake_V1_SubmitHelpRequestRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_SubmitHelpRequestResponse {
        let identity = CallerIdentity.current
        let submission = try SubmissionValidator(reference: try await reference.get())
            .validate(request, caller: identity.caller)
        let outcome = try await store.submit(submission)
        return .with {
            switch outcome {
            case .created(let row):
                $0.helpRequest = row.wire(for: identity)
            case .replayed(let row):
                $0.helpRequest = row.wire(for: identity)
                $0.replayed = true
            }
        }
    }

    public func getHelpRequest(
        request: Kangyi_Intake_V1_GetHelpRequestRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_GetHelpRequestResponse {
        guard let id = UUID(uuidString: request.id) else {
            throw ServiceError.invalidArgument(field: "id", reason: "INVALID_ID", "must be a help request id (a UUID)")
        }
        guard let row = try await store.helpRequest(id: id) else { throw ServiceError.notFound("help request") }
        return .with { $0.helpRequest = row.wire(for: .current) }
    }

    public func lookupHelpRequest(
        request: Kangyi_Intake_V1_LookupHelpRequestRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_LookupHelpRequestResponse {
        // One answer for a wrong phone, an unknown ticket and a malformed one: the look-up reveals nothing.
        let notFound = ServiceError.notFound("help request with this ticket and phone", reason: "HELP_REQUEST_NOT_FOUND")
        guard let phone = Phone.normalize(request.phone), !request.ticket.isEmpty, request.ticket.utf8.count <= 64,
            let row = try await store.helpRequest(ticket: request.ticket), row.phone == phone
        else { throw notFound }
        return .with { $0.helpRequest = row.wire(for: .current) }
    }

    public func listCategories(
        request: Kangyi_Intake_V1_ListCategoriesRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_ListCategoriesResponse {
        let data = try await reference.get()
        return .with {
            $0.categories = data.categories.map { category in
                .with {
                    $0.code = category.code
                    $0.name = category.name
                    $0.nameEn = category.nameEn
                    $0.defaultDepartment = category.defaultDepartment
                }
            }
        }
    }
}

extension StoredHelpRequest {
    /// The wire form. Personal data is masked unless the caller holds the personal-data scope.
    func wire(for identity: CallerIdentity, now: Date = Date()) -> Kangyi_Intake_V1_HelpRequest {
        let unmasked = identity.has(scope: Scope.personalData)
        return .with {
            $0.id = id.uuidString.lowercased()
            $0.ticket = ticket
            $0.category = category
            $0.district = district
            $0.contact = .with { contact in
                contact.phone = unmasked ? phone : Phone.mask(phone)
                contact.name = unmasked ? contactName : (contactName.isEmpty ? "" : String(contactName.prefix(1)) + "*")
                contact.address = unmasked ? address : ""
            }
            $0.description_p = description
            if let location {
                $0.location = .with {
                    $0.latitude = location.latitude
                    $0.longitude = location.longitude
                }
            }
            $0.specialGroups = specialGroups.map(\.wire)
            $0.urgency = urgency.wire
            $0.status = status.wire
            $0.priority = Int32(priority)
            $0.effectivePriority = Int32(Priority.effective(priority: priority, waitedSeconds: now.timeIntervalSince(createdAt)))
            $0.greenChannel = greenChannel
            if let repeatOf { $0.repeatOf = repeatOf.uuidString.lowercased() }
            $0.repeatCount = Int32(repeatCount)
            $0.createTime = Google_Protobuf_Timestamp(date: createdAt)
            $0.updateTime = Google_Protobuf_Timestamp(date: updatedAt)
        }
    }
}
