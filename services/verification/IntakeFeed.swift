import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import Logging
import PostgresNIO
import ServiceLifecycle

/// Brings new submissions into the queue: follows intake's `WatchHelpRequests` stream and records each
/// request as a case together with the stream's cursor, in one transaction, so after a restart (or a
/// broken stream) it resumes exactly where it stopped and loses nothing. Updates from intake (a repeat
/// raising the priority) refresh the case; its state is never taken from intake, which follows it.
struct IntakeFeedFollower: Service {
    let store: CaseStore
    let intake: any Kangyi_Intake_V1_IntakeService.ClientProtocol
    /// How long to wait before opening the stream again after it broke.
    let retryDelay: Duration
    let logger: Logger

    func run() async throws {
        // One round lasts as long as the stream does; a broken stream is resumed after `retryDelay`.
        await repeatUntilShutdown(
            every: retryDelay, logger: logger, failure: "intake change feed interrupted; resuming from the stored cursor"
        ) { try await followOnce() }
    }

    private func followOnce() async throws {
        let cursor = try await store.intakeFeedCursor()
        let request = Kangyi_Intake_V1_WatchHelpRequestsRequest.with { $0.cursor = cursor }
        let identity = CallerIdentity(requestID: RequestID.mint(), caller: "verification")
        try await CallerIdentity.$current.withValue(identity) {
            try await intake.watchHelpRequests(request) { response in
                for try await message in response.messages {
                    guard let source = CaseSource(message.helpRequest) else {
                        logger.error("intake sent a help request verification cannot read", metadata: ["id": "\(message.helpRequest.id)"])
                        continue
                    }
                    try await store.record(source, cursor: message.cursor)
                }
            }
        }
    }
}

/// What a case takes from intake's help request (no personal data).
struct CaseSource: Sendable {
    var id: UUID
    var ticket: String
    var category: String
    var district: String
    var priority: Int
    var greenChannel: Bool
    var repeatOf: UUID?
    var state: CaseState
    var submittedAt: Date

    init?(_ request: Kangyi_Intake_V1_HelpRequest) {
        guard let id = UUID(uuidString: request.id), let state = CaseState(request.status) else { return nil }
        self.id = id
        ticket = request.ticket
        category = request.category
        district = request.district
        priority = Int(request.priority)
        greenChannel = request.greenChannel
        repeatOf = UUID(uuidString: request.repeatOf)
        self.state = state
        submittedAt = request.createTime.date
    }
}

extension CaseStore {
    /// The cursor to resume intake's change feed from ("" before the first submission).
    func intakeFeedCursor() async throws -> String {
        for try await cursor in try await client.query("SELECT cursor FROM verification.intake_feed", logger: logger)
            .decode(String.self)
        {
            return cursor
        }
        return ""
    }

    /// Records a help request as a case (or refreshes the case) and moves the feed cursor past it.
    /// Deadlines come from the service level of its priority; a raised priority can only bring them forward.
    func record(_ source: CaseSource, cursor: String) async throws {
        try await client.transaction(logger: logger) { connection in
            try await connection.queryWhenOpen(
                """
                INSERT INTO verification.cases (id, ticket, category, district, priority, green_channel, repeat_of, state,
                    submitted_at, verify_due_at, resolve_due_at)
                SELECT \(source.id), \(source.ticket), \(source.category), \(source.district), \(source.priority),
                    \(source.greenChannel), \(source.repeatOf), \(source.state.rawValue), \(source.submittedAt),
                    \(source.submittedAt) + level.verify_within, \(source.submittedAt) + level.resolve_within
                FROM verification.service_level(\(source.priority)::integer, \(source.greenChannel)) AS level
                ON CONFLICT (id, district) DO UPDATE SET
                    priority = EXCLUDED.priority, green_channel = EXCLUDED.green_channel, repeat_of = EXCLUDED.repeat_of,
                    verify_due_at = LEAST(cases.verify_due_at, EXCLUDED.verify_due_at),
                    resolve_due_at = LEAST(cases.resolve_due_at, EXCLUDED.resolve_due_at),
                    updated_at = now()
                WHERE (cases.priority, cases.green_channel, cases.repeat_of)
                    IS DISTINCT FROM (EXCLUDED.priority, EXCLUDED.green_channel, EXCLUDED.repeat_of)
                """, logger: logger)
            try await connection.queryWhenOpen(
                """
                INSERT INTO verification.intake_feed (singleton, cursor) VALUES (true, \(cursor))
                ON CONFLICT (singleton) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()
                """, logger: logger)
        }
    }
}
