import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// Checkpoints, terminals, risk areas and watched plates: what operators set and ingest reads.
struct AdministrationStore: Sendable {
    let client: DatabasePool
    let logger: Logger

    struct CheckpointRecord: Sendable, Equatable {
        var code: String
        var name: String
        var district: String
        var road: String
        var latitude: Double?
        var longitude: Double?
    }

    struct TerminalRecord: Sendable, Equatable {
        var terminalID: String
        var checkpoint: String
        var label: String
        var registeredAt: Date
        var retiredAt: Date?
    }

    struct RiskAreaRecord: Sendable, Equatable {
        var code: String
        var level: String
        var effectiveFrom: Date
        var effectiveUntil: Date?
        var note: String
    }

    struct WatchedPlateRecord: Sendable, Equatable {
        var plate: String
        var reason: String
        var watchedBy: String
        var watchedAt: Date
    }

    // MARK: checkpoints

    func checkpoints() async throws -> [CheckpointRecord] {
        var found: [CheckpointRecord] = []
        let rows = try await client.query(
            "SELECT code, name, district, road, latitude, longitude FROM checkpoint.checkpoints ORDER BY code", logger: logger)
        for try await (code, name, district, road, lat, lon) in rows.decode((String, String, String, String, Double?, Double?).self) {
            found.append(CheckpointRecord(code: code, name: name, district: district, road: road, latitude: lat, longitude: lon))
        }
        return found
    }

    func checkpointExists(_ code: String) async throws -> Bool {
        for try await _ in try await client.query("SELECT 1 FROM checkpoint.checkpoints WHERE code = \(code)", logger: logger) {
            return true
        }
        return false
    }

    func setCheckpoint(_ record: CheckpointRecord) async throws {
        try await client.query(
            """
            INSERT INTO checkpoint.checkpoints (code, name, district, road, latitude, longitude)
            VALUES (\(record.code), \(record.name), \(record.district), \(record.road), \(record.latitude), \(record.longitude))
            ON CONFLICT (code) DO UPDATE SET name = excluded.name, district = excluded.district, road = excluded.road,
                latitude = excluded.latitude, longitude = excluded.longitude, updated_at = now()
            """, logger: logger)
    }

    // MARK: terminals

    private static let terminalColumns = "terminal_id, checkpoint, label, registered_at, retired_at"

    private func terminals(_ query: PostgresQuery) async throws -> [TerminalRecord] {
        var found: [TerminalRecord] = []
        let rows = try await client.query(query, logger: logger)
        for try await (id, checkpoint, label, registered, retired) in rows.decode((String, String, String, Date, Date?).self) {
            found.append(TerminalRecord(terminalID: id, checkpoint: checkpoint, label: label, registeredAt: registered, retiredAt: retired))
        }
        return found
    }

    /// Binds a terminal to a checkpoint; the same binding again is answered as it is.
    func register(terminalID: String, checkpoint: String, label: String) async throws -> TerminalRecord {
        let inserted = try await terminals(PostgresQuery(
            unsafeSQL: """
                INSERT INTO checkpoint.terminals (terminal_id, checkpoint, label) VALUES ($1, $2, $3)
                ON CONFLICT (terminal_id) DO NOTHING RETURNING \(Self.terminalColumns)
                """,
            binds: binds(terminalID, checkpoint, label)))
        if let terminal = inserted.first { return terminal }
        guard let existing = try await terminal(terminalID) else {
            throw PlatformError(description: "terminal neither inserted nor found")
        }
        guard existing.checkpoint == checkpoint, existing.retiredAt == nil else {
            throw ServiceError.alreadyExists(
                reason: "TERMINAL_ID_TAKEN",
                existing.retiredAt == nil
                    ? "terminal \(terminalID) is bound to checkpoint \(existing.checkpoint); retire it first or use another id"
                    : "terminal \(terminalID) was retired; a retired id is never reused")
        }
        return existing
    }

    func terminal(_ id: String) async throws -> TerminalRecord? {
        try await terminals(PostgresQuery(
            unsafeSQL: "SELECT \(Self.terminalColumns) FROM checkpoint.terminals WHERE terminal_id = $1", binds: binds(id))
        ).first
    }

    func terminals(checkpoint: String?, includeRetired: Bool) async throws -> [TerminalRecord] {
        var sql = SQLConditions()
        if let checkpoint { sql.add("checkpoint = \(sql.bind(checkpoint))") }
        if !includeRetired { sql.add("retired_at IS NULL") }
        return try await terminals(PostgresQuery(
            unsafeSQL: "SELECT \(Self.terminalColumns) FROM checkpoint.terminals \(sql.whereClause) ORDER BY checkpoint, terminal_id",
            binds: sql.bindings))
    }

    /// Retires a terminal (once; retiring again answers the first retirement).
    func retire(terminalID: String) async throws -> TerminalRecord? {
        try await terminals(PostgresQuery(
            unsafeSQL: """
                UPDATE checkpoint.terminals SET retired_at = coalesce(retired_at, now()) WHERE terminal_id = $1
                RETURNING \(Self.terminalColumns)
                """,
            binds: binds(terminalID))
        ).first
    }

    // MARK: risk areas

    func setRiskArea(_ area: RiskAreaRecord, by caller: String) async throws -> RiskAreaRecord {
        try await client.query(
            """
            INSERT INTO checkpoint.risk_areas (code, effective_from, effective_until, level, note, set_by)
            VALUES (\(area.code), \(area.effectiveFrom), \(area.effectiveUntil), \(area.level), \(area.note), \(caller))
            ON CONFLICT (code, effective_from) DO UPDATE SET effective_until = excluded.effective_until,
                level = excluded.level, note = excluded.note, set_by = excluded.set_by, updated_at = now()
            """, logger: logger)
        return area
    }

    func riskAreas(inForceAt: Date?) async throws -> [RiskAreaRecord] {
        var sql = SQLConditions()
        if let at = inForceAt {
            let bound = sql.bind(at)
            sql.add("effective_from <= \(bound) AND (effective_until IS NULL OR \(bound) < effective_until)")
        }
        var found: [RiskAreaRecord] = []
        let rows = try await client.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT code, level, effective_from, effective_until, note FROM checkpoint.risk_areas \(sql.whereClause)
                    ORDER BY code, effective_from
                    """,
                binds: sql.bindings),
            logger: logger)
        for try await (code, level, from, until, note) in rows.decode((String, String, Date, Date?, String).self) {
            found.append(RiskAreaRecord(code: code, level: level, effectiveFrom: from, effectiveUntil: until, note: note))
        }
        return found
    }

    // MARK: watched plates

    func watch(plate: String, reason: String, by caller: String) async throws -> WatchedPlateRecord {
        let rows = try await client.query(
            """
            INSERT INTO checkpoint.watched_plates (plate, reason, watched_by) VALUES (\(plate), \(reason), \(caller))
            ON CONFLICT (plate) DO UPDATE SET reason = excluded.reason, watched_by = excluded.watched_by, watched_at = now()
            RETURNING plate, reason, watched_by, watched_at
            """, logger: logger)
        for try await (plate, reason, by, at) in rows.decode((String, String, String, Date).self) {
            return WatchedPlateRecord(plate: plate, reason: reason, watchedBy: by, watchedAt: at)
        }
        throw PlatformError(description: "watched plate was not stored")
    }

    /// True if the plate was watched.
    func unwatch(plate: String) async throws -> Bool {
        for try await _ in try await client.query(
            "DELETE FROM checkpoint.watched_plates WHERE plate = \(plate) RETURNING plate", logger: logger)
        {
            return true
        }
        return false
    }

    func watchedPlates() async throws -> [WatchedPlateRecord] {
        var found: [WatchedPlateRecord] = []
        let rows = try await client.query(
            "SELECT plate, reason, watched_by, watched_at FROM checkpoint.watched_plates ORDER BY watched_at DESC, plate",
            logger: logger)
        for try await (plate, reason, by, at) in rows.decode((String, String, String, Date).self) {
            found.append(WatchedPlateRecord(plate: plate, reason: reason, watchedBy: by, watchedAt: at))
        }
        return found
    }
}
