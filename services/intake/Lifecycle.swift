/// The public status a citizen sees, as one state machine, enforced here and nowhere else:
///
///     submitted → verified | rejected | duplicate
///     verified  → assigned | rejected | duplicate
///     assigned  → resolved | verified (taken back from a department)
///     resolved  → closed (after the return visit) | assigned (reopened: not solved)
///     closed    → assigned (reopened)
///     rejected, duplicate → submitted (reopened for another look)
enum Lifecycle {
    static let allowed: [HelpRequestStatus: Set<HelpRequestStatus>] = [
        .submitted: [.verified, .rejected, .duplicate],
        .verified: [.assigned, .rejected, .duplicate],
        .assigned: [.resolved, .verified],
        .resolved: [.closed, .assigned],
        .closed: [.assigned],
        .rejected: [.submitted],
        .duplicate: [.submitted],
    ]

    static func allows(from: HelpRequestStatus, to: HelpRequestStatus) -> Bool {
        allowed[from]?.contains(to) ?? false
    }
}
