import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import Logging
import PostgresNIO
import ServiceLifecycle

/// Carries transitions to intake's public status (`IntakeService.TransitionHelpRequest`) from the
/// outbox the transition wrote in its own transaction. Each RPC delivers its case's transitions at once,
/// with a deadline; whatever intake did not take (down, slow) is delivered by the background loop until it
/// is. Delivery is in order per case and idempotent — the event id is intake's transition id — so a
/// delivery repeated after a crash is applied once, and the two services converge after any failure.
struct IntakeSync: Service {
    let store: CaseStore
    let intake: any Kangyi_Intake_V1_IntakeService.ClientProtocol
    /// The deadline of one TransitionHelpRequest call.
    let callTimeout: Duration
    /// How often the background loop retries what is pending.
    let retryInterval: Duration
    let logger: Logger

    enum Outcome: Sendable, Equatable {
        case synced
        /// `remaining` transitions are still to deliver; nil when the outbox could not even be read.
        case pending(remaining: Int?)
    }

    /// Delivers the case's pending transitions, oldest first; stops at the first intake does not take.
    func deliver(caseID: UUID) async -> Outcome {
        do {
            let pending = try await store.pendingDeliveries(caseID: caseID, limit: 100)
            for (index, delivery) in pending.enumerated() {
                guard await send(delivery) else { return .pending(remaining: pending.count - index) }
            }
            return .synced
        } catch {
            logger.warning("could not read the intake outbox", metadata: ["error": "\(loggableDescription(of: error))"])
            return .pending(remaining: nil)
        }
    }

    /// One pass over everything pending.
    func deliverPending() async throws {
        var blocked: Set<UUID> = []
        for delivery in try await store.pendingDeliveries(caseID: nil, limit: 500) where !blocked.contains(delivery.caseID) {
            if !(await send(delivery)) { blocked.insert(delivery.caseID) }
        }
    }

    func run() async throws {
        await repeatUntilShutdown(every: retryInterval, logger: logger, failure: "intake outbox pass failed") {
            try await deliverPending()
        }
    }

    /// True once intake has the transition (now or before).
    private func send(_ delivery: PendingDelivery) async -> Bool {
        let request = Kangyi_Intake_V1_TransitionHelpRequestRequest.with {
            $0.id = delivery.caseID.uuidString.lowercased()
            $0.transitionID = "verification-\(delivery.eventID.uuidString.lowercased())"
            $0.toStatus = Kangyi_Intake_V1_HelpRequestStatus(delivery.toState)
            $0.reason = delivery.reason
        }
        var options = CallOptions.defaults
        options.timeout = callTimeout
        // Within the deadline, wait for a connection being (re)made — intake just restarted — rather than
        // fail at once; intake down for longer leaves the transition PENDING when the deadline passes.
        options.waitForReady = true
        // Intake records the transition as the staff member's, under the request id being served.
        let current = CallerIdentity.current
        let identity = CallerIdentity(
            requestID: current.requestID.isEmpty ? RequestID.mint() : current.requestID, caller: delivery.actor,
            department: delivery.actorDepartment)
        do {
            _ = try await CallerIdentity.$current.withValue(identity) {
                try await intake.transitionHelpRequest(request, options: options)
            }
        } catch {
            let described = loggableDescription(of: error)
            // UNAVAILABLE and DEADLINE_EXCEEDED pass; anything else means the services disagree and needs a person.
            let transient = (error as? RPCError).map { [.unavailable, .deadlineExceeded, .cancelled].contains($0.code) } ?? true
            logger.log(
                level: transient ? .warning : .error, "intake has not taken a transition; it stays in the outbox",
                metadata: ["case_id": "\(delivery.caseID)", "event_id": "\(delivery.eventID)", "error": "\(described)"])
            try? await store.recordFailedDelivery(delivery.eventID, error: described)
            return false
        }
        do {
            try await store.markDelivered(delivery.eventID)
        } catch {
            // Intake has it; the next pass repeats the call, which intake answers as a replay.
            logger.warning("delivered to intake but not marked", metadata: ["event_id": "\(delivery.eventID)"])
        }
        return true
    }
}

/// A transition intake has not confirmed yet.
struct PendingDelivery: Sendable {
    var eventID: UUID
    var caseID: UUID
    var toState: CaseState
    var actor: String
    var actorDepartment: String
    var reason: String
}

extension CaseStore {
    /// Undelivered transitions in the order they were made (of one case, or of all).
    func pendingDeliveries(caseID: UUID?, limit: Int) async throws -> [PendingDelivery] {
        let rows = try await client.query(
            """
            SELECT o.event_id, o.case_id, o.to_status, e.actor, e.actor_department, e.reason
            FROM verification.intake_outbox o JOIN verification.events e ON e.id = o.event_id
            WHERE o.delivered_at IS NULL AND (\(caseID)::uuid IS NULL OR o.case_id = \(caseID))
            ORDER BY o.seq LIMIT \(limit)
            """, logger: logger)
        var pending: [PendingDelivery] = []
        for try await (eventID, caseID, toStatus, actor, department, reason) in rows.decode(
            (UUID, UUID, String, String, String, String).self)
        {
            guard let state = CaseState(rawValue: toStatus) else { continue }
            pending.append(.init(
                eventID: eventID, caseID: caseID, toState: state, actor: actor, actorDepartment: department, reason: reason))
        }
        return pending
    }

    func markDelivered(_ eventID: UUID) async throws {
        try await client.query(
            "UPDATE verification.intake_outbox SET delivered_at = now() WHERE event_id = \(eventID) AND delivered_at IS NULL",
            logger: logger)
    }

    func recordFailedDelivery(_ eventID: UUID, error: String) async throws {
        try await client.query(
            "UPDATE verification.intake_outbox SET attempts = attempts + 1, last_error = \(error) WHERE event_id = \(eventID)",
            logger: logger)
    }
}
