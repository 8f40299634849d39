import KangyiPlatform

/// Where a case stands. The same states as intake's public status, which follows them.
enum CaseState: String, Sendable, CaseIterable, Codable {
    case submitted, verified, rejected, duplicate, assigned, resolved, closed
}

/// How a return visit (the call back to the citizen) went.
enum ReturnVisitOutcome: String, Sendable {
    case unreached, satisfied
    case partlySolved = "partly_solved"
    case notSolved = "not_solved"
}

/// What staff do to a case that may change its state.
enum Move: Sendable, Equatable {
    case verify, reject, markDuplicate, assign, resolve, reopen
    case returnVisit(ReturnVisitOutcome)

    /// The name recorded in the audit trail.
    var action: String {
        switch self {
        case .verify: "verify"
        case .reject: "reject"
        case .markDuplicate: "mark_duplicate"
        case .assign: "assign"
        case .resolve: "resolve"
        case .reopen: "reopen"
        case .returnVisit: "return_visit"
        }
    }
}

/// The lifecycle of a case, as one state machine, enforced here and nowhere else in this service:
///
///     submitted → verified | rejected | duplicate          (Verify, Reject, MarkDuplicate)
///     verified  → assigned | rejected | duplicate          (Assign, Reject, MarkDuplicate)
///     assigned  → resolved                                 (Resolve)
///     resolved  → closed      return visit: satisfied or partly solved
///               → assigned    return visit: not solved (reopened)
///               → resolved    return visit: citizen not reached (recorded, no move)
///     rejected, duplicate → submitted;  resolved, closed → assigned      (Reopen)
///
/// Intake's public-status lifecycle admits every move that changes the state here.
enum CaseLifecycle {
    /// Where `move` takes a case that is `state`, or nil when the machine forbids it.
    static func target(of move: Move, from state: CaseState) -> CaseState? {
        switch (move, state) {
        case (.verify, .submitted): .verified
        case (.reject, .submitted), (.reject, .verified): .rejected
        case (.markDuplicate, .submitted), (.markDuplicate, .verified): .duplicate
        case (.assign, .verified): .assigned
        case (.resolve, .assigned): .resolved
        case (.returnVisit(.unreached), .resolved): .resolved
        case (.returnVisit(.satisfied), .resolved), (.returnVisit(.partlySolved), .resolved): .closed
        case (.returnVisit(.notSolved), .resolved): .assigned
        case (.reopen, .rejected), (.reopen, .duplicate): .submitted
        case (.reopen, .resolved), (.reopen, .closed): .assigned
        default: nil
        }
    }

    /// The target, or FAILED_PRECONDITION naming the current state and the states the move needs.
    static func require(_ move: Move, from state: CaseState) throws -> CaseState {
        if let target = target(of: move, from: state) { return target }
        let needs = CaseState.allCases.filter { target(of: move, from: $0) != nil }.map(\.rawValue)
        throw ServiceError.failedPrecondition(
            reason: "TRANSITION_NOT_ALLOWED",
            "the case is \(state.rawValue); \(move.action) needs a case that is \(needs.joined(separator: " or "))",
            metadata: ["current_state": state.rawValue, "action": move.action])
    }

    /// The service-level timer that runs while a case is in `state`, if any.
    static func timer(in state: CaseState) -> ServiceLevelTimer? {
        switch state {
        case .submitted: .verify
        case .verified, .assigned: .resolve
        case .rejected, .duplicate, .resolved, .closed: nil
        }
    }
}

/// The two service-level timers: from submission to verification, and to resolution.
enum ServiceLevelTimer: String, Sendable {
    case verify, resolve
}
