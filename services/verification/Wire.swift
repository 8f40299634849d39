import Foundation
import KangyiAPI
import SwiftProtobuf

/// Every mapping between this service's domain and its wire types, in one place.
extension CaseState {
    init?(_ wire: Kangyi_Verification_V1_CaseState) {
        switch wire {
        case .submitted: self = .submitted
        case .verified: self = .verified
        case .rejected: self = .rejected
        case .duplicate: self = .duplicate
        case .assigned: self = .assigned
        case .resolved: self = .resolved
        case .closed: self = .closed
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    init?(_ intake: Kangyi_Intake_V1_HelpRequestStatus) {
        switch intake {
        case .submitted: self = .submitted
        case .verified: self = .verified
        case .rejected: self = .rejected
        case .duplicate: self = .duplicate
        case .assigned: self = .assigned
        case .resolved: self = .resolved
        case .closed: self = .closed
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    var wire: Kangyi_Verification_V1_CaseState {
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

extension Kangyi_Intake_V1_HelpRequestStatus {
    init(_ state: CaseState) {
        switch state {
        case .submitted: self = .submitted
        case .verified: self = .verified
        case .rejected: self = .rejected
        case .duplicate: self = .duplicate
        case .assigned: self = .assigned
        case .resolved: self = .resolved
        case .closed: self = .closed
        }
    }
}

extension ReturnVisitOutcome {
    /// The outcome a `RecordReturnVisit` reports; nil when `satisfaction` is missing or not allowed.
    init?(reached: Bool, satisfaction: Kangyi_Verification_V1_Satisfaction) {
        switch (reached, satisfaction) {
        case (false, .unspecified): self = .unreached
        case (true, .satisfied): self = .satisfied
        case (true, .partlySolved): self = .partlySolved
        case (true, .notSolved): self = .notSolved
        default: return nil
        }
    }

    var wire: Kangyi_Verification_V1_Satisfaction {
        switch self {
        case .unreached: .unspecified
        case .satisfied: .satisfied
        case .partlySolved: .partlySolved
        case .notSolved: .notSolved
        }
    }
}

extension ServiceLevelTimer {
    var wire: Kangyi_Verification_V1_EscalationKind {
        switch self {
        case .verify: .verify
        case .resolve: .resolve
        }
    }
}

extension Kangyi_Verification_V1_CaseAction {
    init(action: String) {
        switch action {
        case "claim": self = .claim
        case "release": self = .release
        case "verify": self = .verify
        case "reject": self = .reject
        case "mark_duplicate": self = .markDuplicate
        case "assign": self = .assign
        case "resolve": self = .resolve
        case "return_visit": self = .returnVisit
        case "reopen": self = .reopen
        default: self = .unspecified
        }
    }
}

extension CaseRecord {
    var wire: Kangyi_Verification_V1_Case {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.ticket = ticket
            $0.category = category
            $0.district = district
            $0.priority = Int32(priority)
            $0.greenChannel = greenChannel
            $0.state = state.wire
            $0.department = department ?? ""
            $0.duplicateOf = duplicateOf?.uuidString.lowercased() ?? ""
            $0.repeatOf = repeatOf?.uuidString.lowercased() ?? ""
            $0.submitTime = Google_Protobuf_Timestamp(date: submittedAt)
            if let verifiedAt { $0.verifyTime = Google_Protobuf_Timestamp(date: verifiedAt) }
            if let resolvedAt { $0.resolveTime = Google_Protobuf_Timestamp(date: resolvedAt) }
            if let closedAt { $0.closeTime = Google_Protobuf_Timestamp(date: closedAt) }
            $0.verifyDueTime = Google_Protobuf_Timestamp(date: verifyDueAt)
            $0.resolveDueTime = Google_Protobuf_Timestamp(date: resolveDueAt)
            $0.breached = breached
            if let claimHolder, let claimExpiresAt {
                $0.claim = .with {
                    $0.claimedBy = claimHolder
                    $0.expireTime = Google_Protobuf_Timestamp(date: claimExpiresAt)
                }
            }
            $0.pendingIntakeTransitions = Int32(pendingIntakeTransitions)
            $0.updateTime = Google_Protobuf_Timestamp(date: updatedAt)
        }
    }
}

extension CaseEventRecord {
    var wire: Kangyi_Verification_V1_CaseEvent {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.action = .init(action: action)
            $0.fromState = fromState.wire
            $0.toState = toState.wire
            $0.actor = .with {
                $0.caller = actor
                $0.department = actorDepartment
            }
            $0.time = Google_Protobuf_Timestamp(date: at)
            $0.reason = reason
            $0.department = department ?? ""
            $0.duplicateOf = duplicateOf?.uuidString.lowercased() ?? ""
            $0.reached = reached ?? false
            $0.satisfaction = satisfaction?.wire ?? .unspecified
        }
    }
}

extension EscalationRecord {
    var wire: Kangyi_Verification_V1_Escalation {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.kind = timer.wire
            $0.case = caseRecord.wire
            $0.dueTime = Google_Protobuf_Timestamp(date: dueAt)
            $0.breachTime = Google_Protobuf_Timestamp(date: breachedAt)
        }
    }
}

extension CaseStatistics.Durations {
    var wire: Kangyi_Verification_V1_DurationSummary {
        .with {
            $0.count = count
            if let median { $0.median = Google_Protobuf_Duration(rounding: median) }
            if let p90 { $0.p90 = Google_Protobuf_Duration(rounding: p90) }
        }
    }
}
