import Foundation
import PostgresNIO

/// A case as the store holds it: the operational copy of an intake help request and where the staff's
/// work on it stands.
struct CaseRecord: Sendable {
    var id: UUID
    var ticket: String
    var category: String
    var district: String
    var priority: Int
    var greenChannel: Bool
    var repeatOf: UUID?
    var state: CaseState
    var department: String?
    var duplicateOf: UUID?
    var submittedAt: Date
    var verifiedAt: Date?
    var resolvedAt: Date?
    var closedAt: Date?
    var verifyDueAt: Date
    var resolveDueAt: Date
    /// Who holds the case now and until when (nil: nobody; an expired lease holds nothing).
    var claimHolder: String?
    var claimExpiresAt: Date?
    var breached: Bool
    var pendingIntakeTransitions: Int
    var updatedAt: Date
}

/// One entry of a case's audit trail.
struct CaseEventRecord: Sendable {
    var id: UUID
    var action: String
    var fromState: CaseState
    var toState: CaseState
    var actor: String
    var actorDepartment: String
    var at: Date
    var reason: String
    var department: String?
    var duplicateOf: UUID?
    var reached: Bool?
    var satisfaction: ReturnVisitOutcome?
}

/// An action staff take on a case, checked and ready to apply.
struct CaseAction: Sendable {
    var caseID: UUID
    /// The caller's idempotency key.
    var requestID: String
    var actor: String
    var actorDepartment: String
    var move: Move
    var reason: String = ""
    var department: String? = nil
    var duplicateOf: UUID? = nil
}

/// How `verification.cases` is read: the columns of a ``CaseRecord`` and the derived ones.
enum CaseRow {
    static let select = "SELECT \(columns) FROM verification.cases c"

    static let columns = """
        c.id, c.ticket, c.category, c.district, c.priority, c.green_channel, c.repeat_of, c.state, c.department,
            c.duplicate_of, c.submitted_at, c.verified_at, c.resolved_at, c.closed_at, c.verify_due_at, c.resolve_due_at,
            CASE WHEN c.claim_expires_at > now() THEN c.claimed_by END AS claim_holder,
            CASE WHEN c.claim_expires_at > now() THEN c.claim_expires_at END AS claim_expires,
            \(breached) AS breached,
            (SELECT count(*) FROM verification.intake_outbox o WHERE o.case_id = c.id AND o.delivered_at IS NULL)::int AS pending,
            c.updated_at
        """

    /// True when the deadline of the case's current stage has passed (see ``CaseLifecycle/timer(in:)``).
    static let breached = """
        ((c.state = 'submitted' AND c.verify_due_at <= now()) \
        OR (c.state IN ('verified', 'assigned') AND c.resolve_due_at <= now()))
        """

    static func decode(_ row: PostgresRow) throws -> CaseRecord {
        let row = row.makeRandomAccess()
        return CaseRecord(
            id: try row["id"].decode(UUID.self),
            ticket: try row["ticket"].decode(String.self),
            category: try row["category"].decode(String.self),
            district: try row["district"].decode(String.self),
            priority: try row["priority"].decode(Int.self),
            greenChannel: try row["green_channel"].decode(Bool.self),
            repeatOf: try row["repeat_of"].decode(UUID?.self),
            state: CaseState(rawValue: try row["state"].decode(String.self)) ?? .submitted,
            department: try row["department"].decode(String?.self),
            duplicateOf: try row["duplicate_of"].decode(UUID?.self),
            submittedAt: try row["submitted_at"].decode(Date.self),
            verifiedAt: try row["verified_at"].decode(Date?.self),
            resolvedAt: try row["resolved_at"].decode(Date?.self),
            closedAt: try row["closed_at"].decode(Date?.self),
            verifyDueAt: try row["verify_due_at"].decode(Date.self),
            resolveDueAt: try row["resolve_due_at"].decode(Date.self),
            claimHolder: try row["claim_holder"].decode(String?.self),
            claimExpiresAt: try row["claim_expires"].decode(Date?.self),
            breached: try row["breached"].decode(Bool.self),
            pendingIntakeTransitions: try row["pending"].decode(Int.self),
            updatedAt: try row["updated_at"].decode(Date.self))
    }
}
