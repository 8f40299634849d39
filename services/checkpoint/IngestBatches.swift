import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// One group commit of vehicle logs, in a single transaction (so nobody is acknowledged before the
/// commit), at most six statements however many logs:
///
/// 1. The terminals of the batch: an unknown terminal, or one retired before the log was observed,
///    refuses its logs.
/// 2. The ledger (`log_sequences`): one INSERT … ON CONFLICT DO NOTHING claims each (terminal,
///    sequence); a claim that loses is a resend (same content hash) or a conflict (another log),
///    told apart by one look-up of the stored hashes. The same key twice in one batch (a terminal on
///    two connections) is settled in memory first.
/// 3. The flags' look-ups: the risk areas of the batch's origins and plate regions, and which of its
///    plates are watched — the tables as they are in this transaction.
/// 4. COPY of the claimed logs into the day partitions. They cannot conflict any more, so nothing needs
///    planning, joining or returning: PostgreSQL spent 19 µs a row on the INSERT … SELECT from unnested
///    arrays with the flags' look-ups per row, and the server 7 % of its CPU encoding those arrays.
struct IngestBatches: Sendable {
    let client: PostgresClient
    let partitions: PartitionKeeper
    let logger: Logger

    /// Throws when the transaction failed as a whole; the ``GroupCommitter`` then isolates the log the
    /// database refuses.
    func commit(_ items: [NewVehicleLog]) async throws -> [Result<IngestOutcome, any Error>] {
        // Every day a valid log can fall on has its partition once the keeper has run; before its first
        // round (at start-up) or after midnight, it runs here, outside the batch's transaction.
        if !items.allSatisfy({ partitions.covers($0.observedAt) }) { try await partitions.maintain() }
        return try await client.transaction(logger: logger) { connection in
            try await commit(items, on: connection)
        }
    }

    private struct Key: Hashable {
        var terminalID: String
        var sequence: Int64
    }

    private func commit(_ items: [NewVehicleLog], on connection: PostgresConnection) async throws
        -> [Result<IngestOutcome, any Error>]
    {
        var results = [Result<IngestOutcome, any Error>?](repeating: nil, count: items.count)

        // 1. Terminals.
        let terminals = try await self.terminals(Set(items.map(\.terminalID)), on: connection)
        var leaders: [(index: Int, checkpoint: String)] = []
        var leaderOf: [Key: Int] = [:]
        var followers: [(index: Int, leader: Int)] = []
        for (index, item) in items.enumerated() {
            guard let terminal = terminals.found[item.terminalID] else {
                results[index] = .success(.rejected([.init(
                    field: "log.terminal_id", reason: "UNKNOWN_TERMINAL", description: "no terminal is registered under this id")]))
                continue
            }
            if let retired = terminal.retiredAt, item.observedAt >= retired {
                results[index] = .success(.rejected([.init(
                    field: "log.terminal_id", reason: "TERMINAL_RETIRED",
                    description: "the terminal was retired before this log was observed")]))
                continue
            }
            let key = Key(terminalID: item.terminalID, sequence: item.sequence)
            if let leader = leaderOf[key] {
                followers.append((index, leader))
            } else {
                leaderOf[key] = index
                leaders.append((index, terminal.checkpoint))
            }
        }

        // 2. Claim the sequences; settle the claims that lost.
        let claimed = try await claim(leaders.map { (items[$0.index], $0.checkpoint) }, on: connection)
        let lost = leaders.filter { !claimed.contains(Key(terminalID: items[$0.index].terminalID, sequence: items[$0.index].sequence)) }
        let earlier = try await stored(lost.map { (items[$0.index], $0.checkpoint) }, on: connection)
        for (position, leader) in lost.enumerated() {
            guard let (key, sameContent) = earlier[position] else {
                results[leader.index] = .failure(PlatformError(description: "vehicle log neither claimed nor found"))
                continue
            }
            results[leader.index] = .success(sameContent ? .replayed(key) : .conflict)
        }

        // 3. Store the new logs.
        let new = leaders.filter { claimed.contains(Key(terminalID: items[$0.index].terminalID, sequence: items[$0.index].sequence)) }
        let inserted = try await insert(new.map { (items[$0.index], $0.checkpoint) }, receivedAt: terminals.now, on: connection)
        for (position, leader) in new.enumerated() {
            results[leader.index] = .success(.stored(inserted[position]))
        }

        for (index, leader) in followers {
            guard case .success(let outcome)? = results[leader] else {
                results[index] = results[leader]
                continue
            }
            let same = items[index].canonicalContent == items[leader].canonicalContent
            switch outcome {
            case .stored(let log):
                results[index] = .success(same ? .replayed(VehicleLogKey(log)) : .conflict)
            case .replayed(let key):
                results[index] = .success(same ? .replayed(key) : .conflict)
            case .conflict, .rejected:
                results[index] = .success(outcome)
            }
        }
        return results.map { $0 ?? .failure(PlatformError(description: "vehicle log left unanswered")) }
    }

    /// The batch's terminals, with the transaction's start (`now()`, what `received_at` defaults to) on
    /// every row: a batch with no known terminal stores nothing.
    private func terminals(_ ids: Set<String>, on connection: PostgresConnection) async throws
        -> (found: [String: (checkpoint: String, retiredAt: Date?)], now: Date)
    {
        var found: [String: (String, Date?)] = [:]
        var now = Date()
        let rows = try await connection.query(
            "SELECT terminal_id, checkpoint, retired_at, now() FROM checkpoint.terminals WHERE terminal_id = ANY(\(Array(ids)))",
            logger: logger)
        for try await (id, checkpoint, retired, start) in rows.decode((String, String, Date?, Date).self) {
            found[id] = (checkpoint, retired)
            now = start
        }
        return (found, now)
    }

    /// Claims (checkpoint, terminal, sequence) for each log; returns the keys this batch claimed.
    private func claim(_ logs: [(NewVehicleLog, String)], on connection: PostgresConnection) async throws -> Set<Key> {
        guard !logs.isEmpty else { return [] }
        let query = PostgresQuery(
            unsafeSQL: """
                INSERT INTO checkpoint.log_sequences (checkpoint, terminal_id, sequence, observed_at, content_hash)
                SELECT checkpoint, terminal_id, sequence, observed_at, md5(content)
                FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::text[])
                     AS n(checkpoint, terminal_id, sequence, observed_at, content)
                ORDER BY checkpoint, terminal_id, sequence  -- one lock order: two batches cannot deadlock
                ON CONFLICT DO NOTHING
                RETURNING terminal_id, sequence
                """,
            binds: binds(
                logs.map(\.1), logs.map(\.0.terminalID), logs.map(\.0.sequence), logs.map(\.0.observedAt),
                logs.map(\.0.canonicalContent)))
        var claimed: Set<Key> = []
        for try await (terminal, sequence) in try await connection.query(query, logger: logger).decode((String, Int64).self) {
            claimed.insert(Key(terminalID: terminal, sequence: sequence))
        }
        return claimed
    }

    /// For each log whose key was claimed before: where the stored log is, and whether it is the same.
    private func stored(_ logs: [(NewVehicleLog, String)], on connection: PostgresConnection) async throws
        -> [Int: (VehicleLogKey, sameContent: Bool)]
    {
        guard !logs.isEmpty else { return [:] }
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT k.position, s.observed_at, s.content_hash = md5(k.content)
                FROM unnest($1::int[], $2::text[], $3::text[], $4::int8[], $5::text[])
                     AS k(position, checkpoint, terminal_id, sequence, content)
                JOIN checkpoint.log_sequences s
                  ON s.checkpoint = k.checkpoint AND s.terminal_id = k.terminal_id AND s.sequence = k.sequence
                """,
            binds: binds(
                Array(0..<logs.count), logs.map(\.1), logs.map(\.0.terminalID), logs.map(\.0.sequence),
                logs.map(\.0.canonicalContent)))
        var found: [Int: (VehicleLogKey, Bool)] = [:]
        for try await (position, observedAt, same) in try await connection.query(query, logger: logger).decode((Int, Date, Bool).self) {
            let (log, checkpoint) = logs[position]
            found[position] = (
                VehicleLogKey(checkpoint: checkpoint, terminalID: log.terminalID, sequence: log.sequence, observedAt: observedAt),
                same
            )
        }
        return found
    }

    /// Copies the logs into `vehicle_logs`; returns them as stored, in order.
    private func insert(_ logs: [(NewVehicleLog, String)], receivedAt: Date, on connection: PostgresConnection) async throws
        -> [StoredVehicleLog]
    {
        guard !logs.isEmpty else { return [] }
        let flags = try await BatchFlags.look(up: logs.map(\.0), on: connection, logger: logger)
        let stored = logs.map { log, checkpoint in
            StoredVehicleLog(
                log: log, checkpoint: checkpoint, receivedAt: receivedAt, riskArea: flags.riskArea(log),
                watchedPlate: flags.watchedPlates.contains(log.plate))
        }
        try await connection.copy(into: "checkpoint.vehicle_logs", columns: Self.columns, logger: logger) { rows in
            for row in stored {
                let log = row.log
                rows.text(row.checkpoint)
                rows.text(log.terminalID)
                rows.integer(log.sequence)
                rows.timestamp(log.observedAt)
                rows.text(log.plate)
                rows.text(log.plateColor)
                rows.text(log.vehicleType)
                rows.text(log.direction)
                rows.text(log.originCode)
                rows.text(log.originProvince)
                rows.text(log.plateRegion)
                rows.integerArray(log.temperatures)
                rows.textArray(log.healthCodes)
                rows.integer(log.temperatures.count)
                rows.integer(log.fevers)
                rows.integer(log.redCodes)
                rows.integer(log.yellowCodes)
                rows.text(log.driverPhone)
                rows.text(log.destinationDistrict)
                rows.bool(row.riskArea)
                rows.bool(row.watchedPlate)
                rows.endRow()
            }
        }
        return stored
    }

    /// What COPY writes; `received_at` (now()), `flagged` and the feed position are the table's own.
    private static let columns = [
        "checkpoint", "terminal_id", "sequence", "observed_at", "plate", "plate_color", "vehicle_type", "direction",
        "origin_code", "origin_province", "plate_region", "temperatures", "health_codes", "people", "fevers",
        "red_codes", "yellow_codes", "driver_phone", "destination_district", "risk_area", "watched_plate",
    ]
}

/// The flags a batch's logs take from the tables: risk areas in force where they come from, and
/// watched plates. Two look-ups a batch, however many logs.
struct BatchFlags {
    /// Medium- and high-risk areas among the batch's codes: code → periods in whole microseconds since
    /// 2000 (``PostgresTimestamp``), so "in force at the observed time" is decided exactly as SQL would.
    var riskAreas: [String: [(from: Int64, until: Int64?)]] = [:]
    var watchedPlates: Set<String> = []

    /// A log is from a risk area when its declared origin or its plate's region — or the province or
    /// city containing either — is an area in force when it was observed.
    func riskArea(_ log: NewVehicleLog) -> Bool {
        guard !riskAreas.isEmpty else { return false }
        let observed = PostgresTimestamp.microseconds(log.observedAt)
        return Self.codes(of: log).contains { code in
            riskAreas[code]?.contains { $0.from <= observed && ($0.until.map { observed < $0 } ?? true) } ?? false
        }
    }

    /// The code itself, its city (`4101xx` → `410100`) and its province (`410000`).
    static func codes(of log: NewVehicleLog) -> [String] {
        var codes: [String] = []
        for code in [log.originCode, log.plateRegion] where code.utf8.count == 6 {
            codes += [code, String(code.prefix(4)) + "00", String(code.prefix(2)) + "0000"]
        }
        return codes
    }

    static func look(up logs: [NewVehicleLog], on connection: PostgresConnection, logger: Logger) async throws -> BatchFlags {
        var flags = BatchFlags()
        let codes = Array(Set(logs.flatMap(codes(of:))))
        let areas = try await connection.query(
            """
            SELECT code, ((extract(epoch FROM effective_from) - 946684800) * 1000000)::int8,
                   ((extract(epoch FROM effective_until) - 946684800) * 1000000)::int8
            FROM checkpoint.risk_areas WHERE level IN ('medium', 'high') AND code = ANY(\(codes))
            """,
            logger: logger)
        for try await (code, from, until) in areas.decode((String, Int64, Int64?).self) {
            flags.riskAreas[code, default: []].append((from, until))
        }
        let plates = try await connection.query(
            "SELECT plate FROM checkpoint.watched_plates WHERE plate = ANY(\(Array(Set(logs.map(\.plate)))))", logger: logger)
        for try await plate in plates.decode(String.self) { flags.watchedPlates.insert(plate) }
        return flags
    }
}

extension VehicleLogKey {
    init(_ stored: StoredVehicleLog) {
        self.init(
            checkpoint: stored.checkpoint, terminalID: stored.log.terminalID, sequence: stored.log.sequence,
            observedAt: stored.log.observedAt)
    }
}
