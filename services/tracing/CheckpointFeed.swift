import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import Logging
import PostgresNIO
import ServiceLifecycle

/// Opens a task to call the driver of every vehicle a checkpoint flags for a fever, a red health code or
/// a risk-area origin: follows the checkpoint service's `WatchFlaggedVehicles` and records each task with
/// the stream's cursor in one transaction, exactly once per flagged log (the terminal and its sequence
/// are unique), resuming where it stopped after a restart or a broken stream. It reads the driver's
/// phone as the tracing service, with the personal-data scope, and seals it like any other.
struct CheckpointFeedFollower: Service {
    let store: TaskStore
    let checkpoint: any Kangyi_Checkpoint_V1_CheckpointService.ClientProtocol
    /// How long to wait before opening the stream again after it broke.
    let retryDelay: Duration
    let logger: Logger

    /// The flags that call for a tracing call (a yellow code or a watched plate alone do not).
    static let tracedFlags: Set<Kangyi_Checkpoint_V1_Flag> = [.fever, .redCode, .riskArea]

    func run() async throws {
        await repeatUntilShutdown(
            every: retryDelay, logger: logger, failure: "checkpoint flagged-vehicle feed interrupted; resuming from the stored cursor"
        ) { try await followOnce() }
    }

    private func followOnce() async throws {
        let identity = CallerIdentity(requestID: RequestID.mint(), caller: "tracing", scopes: [Scope.personalData])
        try await CallerIdentity.$current.withValue(identity) {
            // A flagged driver with no destination in the city is traced by the checkpoint's district.
            let checkpoints = try await checkpoint.listCheckpoints(.init())
            let districts = Dictionary(checkpoints.checkpoints.map { ($0.code, $0.district) }, uniquingKeysWith: { $1 })
            let cursor = try await store.checkpointFeedCursor()
            try await checkpoint.watchFlaggedVehicles(.with { $0.cursor = cursor }) { response in
                for try await message in response.messages {
                    let flagged = FlaggedVehicle(message.vehicleLog, checkpointDistrict: districts[message.vehicleLog.checkpoint])
                    try await store.record(flagged, cursor: message.cursor)
                }
            }
        }
    }
}

/// What tracing keeps of a flagged vehicle log: nil details when none of its flags call for tracing.
struct FlaggedVehicle: Sendable {
    var origin: TaskRecord.CheckpointOrigin
    var driver: PersonDetails
    var district: String?
    var traced: Bool

    init(_ stored: Kangyi_Checkpoint_V1_StoredVehicleLog, checkpointDistrict: String?) {
        let flags = stored.flags
        traced = flags.contains { CheckpointFeedFollower.tracedFlags.contains($0) }
        origin = TaskRecord.CheckpointOrigin(
            checkpoint: stored.checkpoint, terminalID: stored.log.terminalID, sequence: stored.log.sequence,
            plate: stored.log.plate, flags: flags.map(Self.name), observedAt: stored.log.observedAt.date)
        driver = PersonDetails(phone: Phone.normalize(stored.log.driverPhone))
        let destination = stored.log.destinationDistrict
        district = destination.isEmpty ? checkpointDistrict : destination
    }

    static func name(_ flag: Kangyi_Checkpoint_V1_Flag) -> String {
        switch flag {
        case .fever: "fever"
        case .redCode: "red_code"
        case .yellowCode: "yellow_code"
        case .riskArea: "risk_area"
        case .watchedPlate: "watched_plate"
        default: "unknown"
        }
    }
}

extension TaskStore {
    /// The cursor to resume the checkpoint feed from ("" before the first flagged vehicle).
    func checkpointFeedCursor() async throws -> String {
        for try await cursor in try await client.query("SELECT cursor FROM tracing.checkpoint_feed", logger: logger)
            .decode(String.self)
        {
            return cursor
        }
        return ""
    }

    /// Opens the driver's task (once per flagged log) and moves the cursor past it, in one transaction.
    func record(_ vehicle: FlaggedVehicle, cursor: String) async throws {
        try await client.transaction(logger: logger) { connection in
            if vehicle.traced {
                // The district must be one the city knows (a destination outside it is left unset).
                let district = try await knownDistrict(vehicle.district, on: connection)
                let person = try await persons.resolve(vehicle.driver, on: connection)
                let day = CalendarDay.of(vehicle.origin.observedAt)
                try await connection.queryWhenOpen(
                    """
                    INSERT INTO tracing.tasks (id, source, person_id, last_exposure, follow_up_until, district,
                        callable_from, due_at, checkpoint, terminal_id, terminal_sequence, plate, flags, observed_at)
                    VALUES (\(UUID()), 'checkpoint', \(person), \(day)::date,
                        \(day)::date + \(rules.followUpDays)::integer, \(district), now(), now() + interval '24 hours',
                        \(vehicle.origin.checkpoint), \(vehicle.origin.terminalID), \(vehicle.origin.sequence),
                        \(vehicle.origin.plate), \(vehicle.origin.flags), \(vehicle.origin.observedAt))
                    ON CONFLICT (terminal_id, terminal_sequence, person_id) DO NOTHING
                    """, logger: logger)
            }
            try await connection.queryWhenOpen(
                """
                INSERT INTO tracing.checkpoint_feed (singleton, cursor) VALUES (true, \(cursor))
                ON CONFLICT (singleton) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()
                """, logger: logger)
        }
    }

    private func knownDistrict(_ code: String?, on connection: PostgresConnection) async throws -> String? {
        guard let code else { return nil }
        for try await known in try await connection.queryWhenOpen(
            "SELECT code FROM common.districts WHERE code = \(code)", logger: logger
        ).decode(String.self) {
            return known
        }
        return nil
    }
}
