import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import ServiceLifecycle
import SwiftProtobuf

/// `kangyi.verification.v1.VerificationService`: the RPCs, translating between the wire and the case
/// store. Every action is attributed to the staff member the gateway vouched for.
public struct VerificationService: Kangyi_Verification_V1_VerificationService.SimpleServiceProtocol {
    let store: CaseStore
    let sync: IntakeSync
    let reference: ReferenceDataCache

    // MARK: The queue

    public func claimNext(
        request: Kangyi_Verification_V1_ClaimNextRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_ClaimNextResponse {
        let staff = try Self.staff()
        let data = try await reference.get()
        var violations = FieldViolations()
        let states = violations.caseStates(request.states)
        violations.checkCategory(request.category, in: data, required: false)
        violations.checkDistrict(request.district, in: data, required: false)
        let lease = violations.checkLease(request.lease, has: request.hasLease, standard: Self.defaultLease, maximum: Self.maximumLease)
        try violations.throwIfAny()
        let claimed = try await store.claimNext(
            actor: staff.caller, actorDepartment: staff.department, states: states.isEmpty ? [.submitted] : states,
            category: request.category.isEmpty ? nil : request.category,
            district: request.district.isEmpty ? nil : request.district, lease: lease)
        return .with { if let claimed { $0.case = claimed.wire } }
    }

    static let defaultLease: Duration = .seconds(300)
    static let maximumLease: Duration = .seconds(1800)

    public func releaseClaim(
        request: Kangyi_Verification_V1_ReleaseClaimRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_ReleaseClaimResponse {
        let staff = try Self.staff()
        let id = try Self.caseID(request.caseID)
        let released = try await store.release(caseID: id, actor: staff.caller, actorDepartment: staff.department)
        return .with { $0.case = released.wire }
    }

    // MARK: Transitions

    public func verify(
        request: Kangyi_Verification_V1_VerifyRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_VerifyResponse {
        var violations = FieldViolations()
        violations.checkText(request.note, field: "note", required: false)
        let done = try await perform(.verify, caseID: request.caseID, requestID: request.requestID, violations) {
            $0.reason = request.note
        }
        return .with { ($0.case, $0.replayed, $0.intakeSync) = done }
    }

    public func reject(
        request: Kangyi_Verification_V1_RejectRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_RejectResponse {
        var violations = FieldViolations()
        violations.checkText(request.reason, field: "reason", required: true)
        let done = try await perform(.reject, caseID: request.caseID, requestID: request.requestID, violations) {
            $0.reason = request.reason
        }
        return .with { ($0.case, $0.replayed, $0.intakeSync) = done }
    }

    public func markDuplicate(
        request: Kangyi_Verification_V1_MarkDuplicateRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_MarkDuplicateResponse {
        var violations = FieldViolations()
        violations.checkText(request.note, field: "note", required: false)
        let original = UUID(uuidString: request.duplicateOf)
        if original == nil {
            violations.add("duplicate_of", "INVALID_CASE_ID", "required: the id of the case this one repeats")
        } else if request.duplicateOf.lowercased() == request.caseID.lowercased() {
            violations.add("duplicate_of", "SELF_DUPLICATE", "a case cannot duplicate itself")
        }
        let done = try await perform(.markDuplicate, caseID: request.caseID, requestID: request.requestID, violations) {
            $0.reason = request.note
            $0.duplicateOf = original
        }
        return .with { ($0.case, $0.replayed, $0.intakeSync) = done }
    }

    public func assign(
        request: Kangyi_Verification_V1_AssignRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_AssignResponse {
        var violations = FieldViolations()
        violations.checkDepartment(request.department, in: try await reference.get(), required: true)
        violations.checkText(request.note, field: "note", required: false)
        let done = try await perform(.assign, caseID: request.caseID, requestID: request.requestID, violations) {
            $0.reason = request.note
            $0.department = request.department
        }
        return .with { ($0.case, $0.replayed, $0.intakeSync) = done }
    }

    public func resolve(
        request: Kangyi_Verification_V1_ResolveRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_ResolveResponse {
        var violations = FieldViolations()
        violations.checkText(request.resolution, field: "resolution", required: true)
        let done = try await perform(.resolve, caseID: request.caseID, requestID: request.requestID, violations) {
            $0.reason = request.resolution
        }
        return .with { ($0.case, $0.replayed, $0.intakeSync) = done }
    }

    public func recordReturnVisit(
        request: Kangyi_Verification_V1_RecordReturnVisitRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_RecordReturnVisitResponse {
        var violations = FieldViolations()
        violations.checkText(request.note, field: "note", required: false)
        let outcome = ReturnVisitOutcome(reached: request.reached, satisfaction: request.satisfaction)
        if outcome == nil {
            violations.add(
                "satisfaction", "INVALID_SATISFACTION",
                request.reached ? "required when the citizen was reached: satisfied, partly solved or not solved"
                    : "must be unset when the citizen was not reached")
        }
        let done = try await perform(
            .returnVisit(outcome ?? .unreached), caseID: request.caseID, requestID: request.requestID, violations
        ) { $0.reason = request.note }
        return .with { ($0.case, $0.replayed, $0.intakeSync) = done }
    }

    public func reopen(
        request: Kangyi_Verification_V1_ReopenRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_ReopenResponse {
        var violations = FieldViolations()
        violations.checkText(request.reason, field: "reason", required: true)
        let done = try await perform(.reopen, caseID: request.caseID, requestID: request.requestID, violations) {
            $0.reason = request.reason
        }
        return .with { ($0.case, $0.replayed, $0.intakeSync) = done }
    }

    /// The common path of every action: check the ids (with the action's own checks), apply it once,
    /// then carry it to intake within the deadline; what intake did not take stays PENDING in the outbox.
    private func perform(
        _ move: Move, caseID: String, requestID: String, _ checks: FieldViolations,
        _ fill: (inout CaseAction) -> Void
    ) async throws -> (Kangyi_Verification_V1_Case, Bool, Kangyi_Verification_V1_IntakeSync) {
        let staff = try Self.staff()
        var violations = checks
        let id = violations.caseID(caseID)
        violations.checkRequestID(requestID, field: "request_id")
        try violations.throwIfAny()
        guard let id else { throw ServiceError.invalidArgument(violations.all) }
        var action = CaseAction(
            caseID: id, requestID: requestID, actor: staff.caller, actorDepartment: staff.department, move: move)
        fill(&action)
        var (record, replayed) = try await store.apply(action)
        var synced = Kangyi_Verification_V1_IntakeSync.synced
        if record.pendingIntakeTransitions > 0 {
            // What is left to deliver follows from the delivery itself; the case need not be read again.
            switch await sync.deliver(caseID: id) {
            case .synced:
                record.pendingIntakeTransitions = 0
            case .pending(let remaining):
                synced = .pending
                if let remaining { record.pendingIntakeTransitions = remaining }
            }
        }
        return (record.wire, replayed, synced)
    }

    // MARK: Reads

    public func getCase(
        request: Kangyi_Verification_V1_GetCaseRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_GetCaseResponse {
        let id = try Self.caseID(request.caseID)
        guard let record = try await store.fetch(id) else { throw ServiceError.notFound("case") }
        let history = try await store.history(of: id)
        return .with {
            $0.case = record.wire
            $0.history = history.map(\.wire)
        }
    }

    public func listCases(
        request: Kangyi_Verification_V1_ListCasesRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_ListCasesResponse {
        let data = try await reference.get()
        var violations = FieldViolations()
        var filter = CaseFilter(breachedOnly: request.breachedOnly)
        filter.states = violations.caseStates(request.states)
        violations.checkDepartment(request.department, in: data, required: false)
        violations.checkCategory(request.category, in: data, required: false)
        violations.checkDistrict(request.district, in: data, required: false)
        try violations.throwIfAny()
        filter.department = request.department.isEmpty ? nil : request.department
        filter.category = request.category.isEmpty ? nil : request.category
        filter.district = request.district.isEmpty ? nil : request.district
        let pageSize = try PageToken.pageSize(request.pageSize)
        let after = try PageToken.decode(request.pageToken, as: CasePageKey.self, fingerprint: filter.fingerprint)
        let rows = try await store.list(filter, after: after, limit: pageSize + 1)
        let page = rows.prefix(pageSize)
        return .with {
            $0.cases = page.map(\.wire)
            if rows.count > pageSize, let last = page.last {
                $0.nextPageToken = PageToken.encode(
                    CasePageKey(submittedAt: last.submittedAt, id: last.id), fingerprint: filter.fingerprint)
            }
        }
    }

    public func getStatistics(
        request: Kangyi_Verification_V1_GetStatisticsRequest, context: ServerContext
    ) async throws -> Kangyi_Verification_V1_GetStatisticsResponse {
        var violations = FieldViolations()
        let from = request.window.hasStart ? violations.checkTimestamp(request.window.start, field: "window.start") : nil
        let to = request.window.hasEnd ? violations.checkTimestamp(request.window.end, field: "window.end") : nil
        if let from, let to, from >= to {
            violations.add("window", "EMPTY_TIME_RANGE", "start must be before end")
        }
        try violations.throwIfAny()
        let statistics = try await store.statistics(from: from, to: to)
        return .with {
            $0.counts = statistics.counts.map { count in
                .with {
                    $0.state = count.state.wire
                    $0.category = count.category
                    $0.count = count.count
                }
            }
            $0.timeToVerify = statistics.timeToVerify.wire
            $0.timeToResolve = statistics.timeToResolve.wire
            $0.satisfied = statistics.satisfaction[.satisfied] ?? 0
            $0.partlySolved = statistics.satisfaction[.partlySolved] ?? 0
            $0.notSolved = statistics.satisfaction[.notSolved] ?? 0
        }
    }

    public func watchEscalations(
        request: Kangyi_Verification_V1_WatchEscalationsRequest,
        response: RPCWriter<Kangyi_Verification_V1_WatchEscalationsResponse>,
        context: ServerContext
    ) async throws {
        let after: Int64
        if request.cursor.isEmpty {
            // Open breaches first, then everything recorded after them.
            after = try await store.lastEscalationSeq()
            for escalation in try await store.openEscalations(upTo: after) {
                try await response.write(.with {
                    $0.escalation = escalation.wire
                    $0.cursor = EscalationCursor.token(escalation.seq)
                })
            }
        } else {
            after = try EscalationCursor.seq(request.cursor)
        }
        // An idle escalation watch looks for new breaches four times a second.
        try await followFeed(
            from: after, context: context, idle: .milliseconds(250),
            next: { try await store.escalations(after: $0, limit: $1).map { (row: $0, cursor: $0.seq) } },
            write: { escalation, seq in
                try await response.write(.with {
                    $0.escalation = escalation.wire
                    $0.cursor = EscalationCursor.token(seq)
                })
            })
    }

    // MARK: Checks

    /// The staff member the gateway vouched for; actions are attributed to them, so anonymous calls are refused.
    static func staff() throws -> CallerIdentity {
        try CallerIdentity.vouched(reason: "STAFF_IDENTITY_REQUIRED", "verification actions", need: "a staff identity")
    }

    /// A request's one case id, checked.
    static func caseID(_ raw: String) throws -> UUID {
        var violations = FieldViolations()
        let id = violations.caseID(raw)
        try violations.throwIfAny()
        guard let id else { throw ServiceError.invalidArgument(violations.all) }
        return id
    }
}

/// `WatchEscalations` cursors: "e1:<seq>".
let EscalationCursor = SequenceCursor(prefix: "e1")

/// The checks of this service's own fields, reported like every other (see ``FieldViolations``).
extension FieldViolations {
    /// A case id (the help request's UUID), or nil with a violation.
    mutating func caseID(_ raw: String) -> UUID? {
        let id = UUID(uuidString: raw)
        if id == nil { add("case_id", "INVALID_CASE_ID", "required: a case id (the help request's UUID)") }
        return id
    }

    /// The known states of a `states` filter; each unknown one is a violation.
    mutating func caseStates(_ wire: [Kangyi_Verification_V1_CaseState]) -> [CaseState] {
        var states: [CaseState] = []
        for (index, value) in wire.enumerated() {
            if let state = CaseState(value) { states.append(state) } else {
                add("states[\(index)]", "INVALID_STATE", "not a known case state")
            }
        }
        return states
    }
}
