import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// One group commit of vehicle logs, in a single transaction (so nobody is acknowledged before the
/// commit), four statements however many logs:
///
/// 1. The terminals of the batch: an unknown terminal, or one retired before the log was observed,
///    refuses its logs.
/// 2. The ledger (`log_sequences`): one INSERT … ON CONFLICT DO NOTHING claims each (terminal,
///    sequence); a claim that loses is a resend (same content hash) or a conflict (another log).
///    The same key twice in one batch (a terminal on two connections) is settled in memory first.
/// 3. One multi-row INSERT of the new logs into the day partitions, computing the risk-area and
///    watched-plate flags against the tables as they are in this transaction.
///
/// A multi-row INSERT from arrays rather than COPY: the flags are computed by the INSERT's joins, and
/// COPY can neither join nor skip conflicts — it would need a staging table and a second INSERT.
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
            guard let terminal = terminals[item.terminalID] else {
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
        let inserted = try await insert(new.map { (items[$0.index], $0.checkpoint) }, on: connection)
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

    private func terminals(_ ids: Set<String>, on connection: PostgresConnection) async throws
        -> [String: (checkpoint: String, retiredAt: Date?)]
    {
        var found: [String: (String, Date?)] = [:]
        let rows = try await connection.query(
            "SELECT terminal_id, checkpoint, retired_at FROM checkpoint.terminals WHERE terminal_id = ANY(\(Array(ids)))",
            logger: logger)
        for try await (id, checkpoint, retired) in rows.decode((String, String, Date?).self) { found[id] = (checkpoint, retired) }
        return found
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

    /// Inserts the logs; returns them as stored, in order.
    private func insert(_ logs: [(NewVehicleLog, String)], on connection: PostgresConnection) async throws -> [StoredVehicleLog] {
        guard !logs.isEmpty else { return [] }
        let query = PostgresQuery(
            unsafeSQL: """
                INSERT INTO checkpoint.vehicle_logs (checkpoint, terminal_id, sequence, observed_at, plate, plate_color,
                    vehicle_type, direction, origin_code, origin_province, plate_region, temperatures, health_codes,
                    people, fevers, red_codes, yellow_codes, driver_phone, destination_district, risk_area, watched_plate)
                SELECT n.checkpoint, n.terminal_id, n.sequence, n.observed_at, n.plate, n.plate_color, n.vehicle_type,
                       n.direction, n.origin_code, n.origin_province, n.plate_region,
                       string_to_array(n.temperatures, ',')::int[], string_to_array(n.health_codes, ','),
                       n.people, n.fevers, n.red_codes, n.yellow_codes, n.driver_phone, n.destination_district,
                       EXISTS (SELECT 1 FROM checkpoint.risk_areas r
                               WHERE r.level IN ('medium', 'high') AND r.effective_from <= n.observed_at
                                 AND (r.effective_until IS NULL OR n.observed_at < r.effective_until)
                                 AND r.code IN (n.origin_code, left(n.origin_code, 4) || '00', left(n.origin_code, 2) || '0000',
                                                n.plate_region, left(n.plate_region, 4) || '00', left(n.plate_region, 2) || '0000')),
                       EXISTS (SELECT 1 FROM checkpoint.watched_plates w WHERE w.plate = n.plate)
                FROM unnest($1::int[], $2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::text[], $7::text[],
                            $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                            $15::int[], $16::int[], $17::int[], $18::int[], $19::text[], $20::text[])
                     AS n(position, checkpoint, terminal_id, sequence, observed_at, plate, plate_color, vehicle_type,
                          direction, origin_code, origin_province, plate_region, temperatures, health_codes,
                          people, fevers, red_codes, yellow_codes, driver_phone, destination_district)
                ORDER BY n.position
                RETURNING terminal_id, sequence, received_at, risk_area, watched_plate
                """,
            binds: binds(
                Array(0..<logs.count), logs.map(\.1), logs.map(\.0.terminalID), logs.map(\.0.sequence),
                logs.map(\.0.observedAt), logs.map(\.0.plate), logs.map(\.0.plateColor), logs.map(\.0.vehicleType),
                logs.map(\.0.direction), logs.map(\.0.originCode), logs.map(\.0.originProvince), logs.map(\.0.plateRegion),
                logs.map { $0.0.temperatures.map(String.init).joined(separator: ",") },
                logs.map { $0.0.healthCodes.joined(separator: ",") }, logs.map { $0.0.temperatures.count },
                logs.map(\.0.fevers), logs.map(\.0.redCodes), logs.map(\.0.yellowCodes), logs.map(\.0.driverPhone),
                logs.map(\.0.destinationDistrict)))
        var computed: [Key: (Date, Bool, Bool)] = [:]
        let rows = try await connection.query(query, logger: logger).decode((String, Int64, Date, Bool, Bool).self)
        for try await (terminal, sequence, received, risk, watched) in rows {
            computed[Key(terminalID: terminal, sequence: sequence)] = (received, risk, watched)
        }
        return try logs.map { log, checkpoint in
            guard let (received, risk, watched) = computed[Key(terminalID: log.terminalID, sequence: log.sequence)] else {
                throw PlatformError(description: "vehicle log was not inserted")
            }
            return StoredVehicleLog(log: log, checkpoint: checkpoint, receivedAt: received, riskArea: risk, watchedPlate: watched)
        }
    }
}

extension VehicleLogKey {
    init(_ stored: StoredVehicleLog) {
        self.init(
            checkpoint: stored.checkpoint, terminalID: stored.log.terminalID, sequence: stored.log.sequence,
            observedAt: stored.log.observedAt)
    }
}
