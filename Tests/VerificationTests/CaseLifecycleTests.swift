import GRPCCore
@testable import KangyiIntake
import KangyiPlatform
import Testing

@testable import KangyiVerification

/// The state machine, every pair: what each move does from each state, and that everything else is
/// refused with FAILED_PRECONDITION naming the current state.
@Suite struct CaseLifecycleTests {
    static let moves: [Move] = [
        .verify, .reject, .markDuplicate, .assign, .resolve, .reopen,
        .returnVisit(.unreached), .returnVisit(.satisfied), .returnVisit(.partlySolved), .returnVisit(.notSolved),
    ]

    /// The whole allowed table, written out; any pair not here must be refused.
    static let allowed: [String: CaseState] = [
        "verify/submitted": .verified,
        "reject/submitted": .rejected, "reject/verified": .rejected,
        "mark_duplicate/submitted": .duplicate, "mark_duplicate/verified": .duplicate,
        "assign/verified": .assigned,
        "resolve/assigned": .resolved,
        "return_visit:unreached/resolved": .resolved,
        "return_visit:satisfied/resolved": .closed,
        "return_visit:partly_solved/resolved": .closed,
        "return_visit:not_solved/resolved": .assigned,
        "reopen/rejected": .submitted, "reopen/duplicate": .submitted,
        "reopen/resolved": .assigned, "reopen/closed": .assigned,
    ]

    static func key(_ move: Move, _ state: CaseState) -> String {
        if case .returnVisit(let outcome) = move { return "return_visit:\(outcome.rawValue)/\(state.rawValue)" }
        return "\(move.action)/\(state.rawValue)"
    }

    @Test func everyPairIsAllowedOrRefusedNamingTheCurrentState() throws {
        var refused = 0
        for move in Self.moves {
            for state in CaseState.allCases {
                if let expected = Self.allowed[Self.key(move, state)] {
                    #expect(try CaseLifecycle.require(move, from: state) == expected, "\(Self.key(move, state))")
                } else {
                    refused += 1
                    let error = #expect(throws: ServiceError.self, "\(Self.key(move, state))") {
                        try CaseLifecycle.require(move, from: state)
                    }
                    #expect(error?.code == .failedPrecondition)
                    #expect(error?.reason == "TRANSITION_NOT_ALLOWED")
                    #expect(error?.metadata["current_state"] == state.rawValue)
                    #expect(error?.message.contains("the case is \(state.rawValue)") == true)
                }
            }
        }
        #expect(refused == Self.moves.count * CaseState.allCases.count - Self.allowed.count)
    }

    /// Intake follows every state change verification makes, so its lifecycle must admit each one.
    @Test func intakeAdmitsEveryStateChange() throws {
        for move in Self.moves {
            for state in CaseState.allCases {
                guard let target = CaseLifecycle.target(of: move, from: state), target != state else { continue }
                let from = try #require(HelpRequestStatus(rawValue: state.rawValue))
                let to = try #require(HelpRequestStatus(rawValue: target.rawValue))
                #expect(Lifecycle.allows(from: from, to: to), "\(Self.key(move, state)) → \(target)")
            }
        }
    }

    @Test func timersFollowTheStage() {
        #expect(CaseLifecycle.timer(in: .submitted) == .verify)
        #expect(CaseLifecycle.timer(in: .verified) == .resolve)
        #expect(CaseLifecycle.timer(in: .assigned) == .resolve)
        for state in [CaseState.rejected, .duplicate, .resolved, .closed] { #expect(CaseLifecycle.timer(in: state) == nil) }
    }
}
