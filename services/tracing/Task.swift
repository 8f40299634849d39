import Foundation
import KangyiAPI
import KangyiPlatform
import PostgresNIO

/// A tracing task as stored: one person to reach and follow up, from a case's contacts or a checkpoint.
struct TaskRecord: Sendable {
    var id: UUID
    var source: String
    var caseID: UUID?
    var personID: UUID
    var relation: String?
    var lastExposure: String
    var followUpUntil: String
    var district: String?
    var status: String
    var listedAt: Date
    var callableFrom: Date?
    var dueAt: Date?
    var firstReachedAt: Date?
    var lastReachedAt: Date?
    var attempts: Int
    var symptomatic: Bool
    var claimedBy: String?
    var claimExpiresAt: Date?
    var closeReason: String?
    var closedAt: Date?
    var closedBy: String?
    var closeRequestID: String?
    var convertedCaseID: UUID?
    var checkpoint: CheckpointOrigin?

    struct CheckpointOrigin: Sendable {
        var checkpoint: String
        var terminalID: String
        var sequence: Int64
        var plate: String
        var flags: [String]
        var observedAt: Date
    }

    var isClosed: Bool { status == "closed" }

    /// The live claim's holder, if any.
    var claimHolder: String? {
        guard let claimedBy, let claimExpiresAt, claimExpiresAt > Date() else { return nil }
        return claimedBy
    }

    /// The moment the follow-up window ends: the day after `followUpUntil` begins (China Standard Time).
    var followUpEnds: Date { (CalendarDay.start(of: followUpUntil) ?? listedAt).addingTimeInterval(86_400) }
}

/// How tasks are read: one column list, one decoder.
enum TaskRow {
    static let columns = """
        t.id, t.source, t.case_id, t.person_id, t.relation, to_char(t.last_exposure, 'YYYY-MM-DD') AS last_exposure,
        to_char(t.follow_up_until, 'YYYY-MM-DD') AS follow_up_until, t.district, t.status, t.listed_at, t.callable_from,
        t.due_at, t.first_reached_at, t.last_reached_at, t.attempts, t.symptomatic, t.claimed_by, t.claim_expires_at,
        t.close_reason, t.closed_at, t.closed_by, t.close_request_id, t.converted_case_id, t.checkpoint, t.terminal_id,
        t.terminal_sequence, t.plate, t.flags, t.observed_at
        """
    static let select = "SELECT \(columns) FROM tracing.tasks t"

    static func decode(_ row: PostgresRow) throws -> TaskRecord {
        let c = row.makeRandomAccess()
        var origin: TaskRecord.CheckpointOrigin?
        if let terminal = try c["terminal_id"].decode(String?.self) {
            origin = TaskRecord.CheckpointOrigin(
                checkpoint: try c["checkpoint"].decode(String?.self) ?? "", terminalID: terminal,
                sequence: try c["terminal_sequence"].decode(Int64?.self) ?? 0, plate: try c["plate"].decode(String?.self) ?? "",
                flags: try c["flags"].decode([String]?.self) ?? [],
                observedAt: try c["observed_at"].decode(Date?.self) ?? Date(timeIntervalSince1970: 0))
        }
        return TaskRecord(
            id: try c["id"].decode(UUID.self), source: try c["source"].decode(String.self),
            caseID: try c["case_id"].decode(UUID?.self), personID: try c["person_id"].decode(UUID.self),
            relation: try c["relation"].decode(String?.self), lastExposure: try c["last_exposure"].decode(String.self),
            followUpUntil: try c["follow_up_until"].decode(String.self), district: try c["district"].decode(String?.self),
            status: try c["status"].decode(String.self), listedAt: try c["listed_at"].decode(Date.self),
            callableFrom: try c["callable_from"].decode(Date?.self), dueAt: try c["due_at"].decode(Date?.self),
            firstReachedAt: try c["first_reached_at"].decode(Date?.self),
            lastReachedAt: try c["last_reached_at"].decode(Date?.self), attempts: try c["attempts"].decode(Int.self),
            symptomatic: try c["symptomatic"].decode(Bool.self), claimedBy: try c["claimed_by"].decode(String?.self),
            claimExpiresAt: try c["claim_expires_at"].decode(Date?.self),
            closeReason: try c["close_reason"].decode(String?.self), closedAt: try c["closed_at"].decode(Date?.self),
            closedBy: try c["closed_by"].decode(String?.self), closeRequestID: try c["close_request_id"].decode(String?.self),
            convertedCaseID: try c["converted_case_id"].decode(UUID?.self), checkpoint: origin)
    }
}

/// A case as stored.
struct CaseRecord: Sendable {
    var id: UUID
    var indexPersonID: UUID
    var classification: String
    var onsetDate: String?
    var source: String
    var district: String?
    var createdBy: String
    var createdByDepartment: String
    var createdAt: Date

    static let select = """
        SELECT id, index_person_id, classification, to_char(onset_date, 'YYYY-MM-DD'), source, district, created_by,
            created_by_department, created_at FROM tracing.cases
        """

    static func decode(_ row: PostgresRow) throws -> CaseRecord {
        let (id, person, classification, onset, source, district, by, department, at) = try row.decode(
            (UUID, UUID, String, String?, String, String?, String, String, Date).self)
        return CaseRecord(
            id: id, indexPersonID: person, classification: classification, onsetDate: onset, source: source,
            district: district, createdBy: by, createdByDepartment: department, createdAt: at)
    }
}

/// A call attempt as stored, its sealed fields opened.
struct AttemptRecord: Sendable {
    var id: UUID
    var outcome: String
    var investigator: String
    var investigatorDepartment: String
    var attemptedAt: Date
    var symptoms: [String]
    var temperature: Int?
    var quarantine: String?
    var quarantineLocation: String?
    var note: String?
    var nextFollowUp: Date?
}

/// The stored names of the wire enums.
enum TracingNames {
    static let relations = WireNames<Kangyi_Tracing_V1_Relation>([
        .household: "household", .close: "close", .casual: "casual", .coTraveller: "co_traveller",
    ])
    static let statuses = WireNames<Kangyi_Tracing_V1_TaskStatus>([
        .pending: "pending", .following: "following", .closed: "closed",
    ])
    static let sources = WireNames<Kangyi_Tracing_V1_TaskSource>([.caseContact: "case_contact", .checkpoint: "checkpoint"])
    static let closeReasons = WireNames<Kangyi_Tracing_V1_CloseReason>([
        .quarantineCompleted: "quarantine_completed", .convertedToCase: "converted_to_case",
        .lostToFollowUp: "lost_to_follow_up",
    ])
    static let classifications = WireNames<Kangyi_Tracing_V1_Classification>([
        .suspected: "suspected", .confirmed: "confirmed",
    ])
    static let outcomes = WireNames<Kangyi_Tracing_V1_CallOutcome>([
        .reached: "reached", .noAnswer: "no_answer", .busy: "busy", .wrongNumber: "wrong_number", .refused: "refused",
        .notInService: "not_in_service",
    ])
    static let symptoms = WireNames<Kangyi_Tracing_V1_Symptom>([
        .fever: "fever", .cough: "cough", .soreThroat: "sore_throat", .fatigue: "fatigue",
        .shortnessOfBreath: "shortness_of_breath", .lossOfSmellOrTaste: "loss_of_smell_or_taste",
        .diarrhoea: "diarrhoea", .muscleAche: "muscle_ache",
    ])
    static let quarantines = WireNames<Kangyi_Tracing_V1_QuarantineKind>([
        .home: "home", .designatedFacility: "designated_facility", .hospital: "hospital", .none: "none",
    ])
}
