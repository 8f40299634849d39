import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import ServiceLifecycle
import SwiftProtobuf

/// `kangyi.intake.v1.IntakeService`: the RPCs, translating between the wire and the intake domain.
public struct IntakeService: Kangyi_Intake_V1_IntakeService.SimpleServiceProtocol {
    let store: IntakeStore
    let reference: ReferenceDataCache

    init(store: IntakeStore, reference: ReferenceDataCache) {
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

    public func listHelpRequests(
        request: Kangyi_Intake_V1_ListHelpRequestsRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_ListHelpRequestsResponse {
        let filter = try HelpRequestFilter(request, reference: try await reference.get())
        let pageSize = try PageToken.pageSize(request.pageSize)
        let after = try PageToken.decode(request.pageToken, as: PageKey.self, fingerprint: filter.fingerprint)
        // One more row than asked tells whether another page follows.
        let rows = try await store.list(filter, after: after, limit: pageSize + 1)
        let page = rows.prefix(pageSize)
        let identity = CallerIdentity.current
        return .with {
            $0.helpRequests = page.map { $0.wire(for: identity) }
            if rows.count > pageSize, let last = page.last {
                $0.nextPageToken = PageToken.encode(last.pageKey, fingerprint: filter.fingerprint)
            }
        }
    }

    public func watchHelpRequests(
        request: Kangyi_Intake_V1_WatchHelpRequestsRequest,
        response: RPCWriter<Kangyi_Intake_V1_WatchHelpRequestsResponse>,
        context: ServerContext
    ) async throws {
        let identity = CallerIdentity.current
        try await followFeed(
            from: try FeedCursor.parse(request.cursor), context: context,
            next: { try await store.changes(after: $0, limit: $1).map { (row: $0.0, cursor: $0.1) } },
            write: { row, position in
                try await response.write(.with {
                    $0.helpRequest = row.wire(for: identity)
                    $0.cursor = position.token
                })
            })
    }

    public func transitionHelpRequest(
        request: Kangyi_Intake_V1_TransitionHelpRequestRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_TransitionHelpRequestResponse {
        var violations = FieldViolations()
        let id = UUID(uuidString: request.id)
        if id == nil { violations.add("id", "INVALID_ID", "must be a help request id (a UUID)") }
        violations.checkRequestID(request.transitionID, field: "transition_id")
        let status = HelpRequestStatus(request.toStatus)
        if status == nil { violations.add("to_status", "INVALID_STATUS", "required: a known status") }
        if request.reason.unicodeScalars.count > 1000 {
            violations.add("reason", "REASON_TOO_LONG", "at most 1000 characters")
        }
        try violations.throwIfAny()
        guard let id, let status else { throw ServiceError.invalidArgument(violations.all) }
        let identity = CallerIdentity.current
        let (row, replayed) = try await store.transition(
            id: id, transitionID: request.transitionID, to: status, actor: identity.caller, reason: request.reason)
        return .with {
            $0.helpRequest = row.wire(for: identity)
            $0.replayed = replayed
        }
    }

    public func submitSuggestion(
        request: Kangyi_Intake_V1_SubmitSuggestionRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_SubmitSuggestionResponse {
        let data = try await reference.get()
        var violations = FieldViolations()
        violations.checkRequestID(request.requestID, field: "request_id")
        violations.checkCategory(request.category, in: data, required: false)
        violations.checkDistrict(request.district, in: data, required: false)
        let text = String(request.text.trimmingSpaces)
        if !(1...SubmissionValidator.maxDescriptionScalars).contains(text.unicodeScalars.count) {
            violations.add("text", "INVALID_TEXT_LENGTH", "must be 1-4000 characters")
        }
        let phone = request.contact.phone.isEmpty ? nil : violations.checkPhone(request.contact.phone, field: "contact.phone")
        try violations.throwIfAny()
        let stored = try await store.submitSuggestion(
            caller: CallerIdentity.current.caller, requestID: request.requestID,
            category: request.category.isEmpty ? nil : request.category,
            district: request.district.isEmpty ? nil : request.district, text: text, phone: phone)
        return .with {
            $0.id = stored.id.uuidString.lowercased()
            $0.createTime = Google_Protobuf_Timestamp(date: stored.createdAt)
            $0.replayed = stored.replayed
        }
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
    var pageKey: PageKey {
        PageKey(green: greenChannel, priority: priority, createdAtMicros: Int64((createdAt.timeIntervalSince1970 * 1e6).rounded()), id: id)
    }

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
