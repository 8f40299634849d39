import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// One group commit of vehicle logs, in a single transaction (so nobody is acknowledged before the
/// commit), at most six statements however many logs:
///
/// 1. The terminals of the batch: an unknown terminal, or one retired before the log was observed,
///    refuses its logs.
/// 2. The ledger (`log_sequences`) claims each (terminal, sequence), in one order (terminal, then
///    sequence) so two batches cannot deadlock: usually with one COPY, and when a key was used before (a
///    terminal resending what it was not told was committed), with INSERT … ON CONFLICT DO NOTHING
///    (``LedgerClaims``); a claim that loses is a resend (same content hash) or a conflict (another
///    log), told apart by one look-up of the stored hashes. The same key twice in one batch (a terminal
///    on two connections) is settled in memory first.
/// 3. The flags' look-ups: the risk areas of the batch's origins and plate regions, and which of its
///    plates are watched — the tables as they are in this transaction.
/// 4. COPY of the claimed logs into the day partitions. They cannot conflict any more, so nothing needs
///    planning, joining or returning: PostgreSQL spent 19 µs a row on the INSERT … SELECT from unnested
///    arrays with the flags' look-ups per row, and the server 7 % of its CPU encoding those arrays.
///
/// The claims' COPY, against INSERT … ON CONFLICT from unnested arrays (a speculative insertion a row):
/// PostgreSQL's time for the ledger 13.5 → 7.5 µs a log (`pg_stat_statements` under four terminals'
/// upload). The content hash is the server's (``ContentHash``), so PostgreSQL hashes nothing either way.
struct IngestBatches: Sendable {
    let client: DatabasePool
    let partitions: PartitionKeeper
    let logger: Logger
    private let claims = LedgerClaims(constraint: "log_sequences_pkey")

    init(client: DatabasePool, partitions: PartitionKeeper, logger: Logger) {
        self.client = client
        self.partitions = partitions
        self.logger = logger
    }

    /// Throws when the transaction failed as a whole; the ``GroupCommitter`` then isolates the log the
    /// database refuses.
    func commit(_ items: [NewVehicleLog]) async throws -> [Result<IngestOutcome, any Error>] {
        // Every day a valid log can fall on has its partition once the keeper has run; before its first
        // round (at start-up) or after midnight, it runs here, outside the batch's transaction.
        if !items.allSatisfy({ partitions.covers($0.observedAt) }) { try await partitions.maintain() }
        let batch = Batch(items: items, hashes: items.map(\.contentHash))
        return try await claims.transaction(on: client, logger: logger) { try await commit(batch, claiming: $0, on: $1) }
    }

    private struct Batch: Sendable {
        var items: [NewVehicleLog]
        /// `items[i].contentHash`, computed once.
        var hashes: [String]
    }

    /// The first log of a batch under a (terminal, sequence), with its terminal's checkpoint.
    private struct Leader {
        var index: Int
        var checkpoint: String
    }

    private func commit(_ batch: Batch, claiming: ClaimMode, on connection: PostgresConnection) async throws
        -> [Result<IngestOutcome, any Error>]
    {
        let items = batch.items
        var results = [Result<IngestOutcome, any Error>?](repeating: nil, count: items.count)

        // 1. Terminals; the batch's keys in claiming order, the same key twice settled after its first.
        let terminals = try await self.terminals(Set(items.map(\.terminalID)), on: connection)
        var keys: [(terminal: Int, sequence: Int64, index: Int)] = []
        keys.reserveCapacity(items.count)
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
            keys.append((terminal.rank, item.sequence, index))
        }
        keys.sort { ($0.terminal, $0.sequence, $0.index) < ($1.terminal, $1.sequence, $1.index) }
        var leaders: [Leader] = []
        var followers: [(index: Int, leader: Int)] = []
        for (position, key) in keys.enumerated() {
            if position > 0, keys[position - 1].terminal == key.terminal, keys[position - 1].sequence == key.sequence {
                followers.append((key.index, leaders[leaders.count - 1].index))
            } else {
                leaders.append(Leader(index: key.index, checkpoint: terminals.checkpoints[key.terminal]))
            }
        }

        // 2. Claim the sequences; settle the claims that lost.
        var new = leaders
        if claiming == .settlingUsedKeys {
            let claimed = try await claim(leaders, of: batch, on: connection)
            new = []
            var lost: [Leader] = []
            for leader in leaders {
                let key = Key(terminalID: items[leader.index].terminalID, sequence: items[leader.index].sequence)
                if claimed.contains(key) { new.append(leader) } else { lost.append(leader) }
            }
            let earlier = try await stored(lost, of: batch, on: connection)
            for (position, leader) in lost.enumerated() {
                guard let (key, sameContent) = earlier[position] else {
                    results[leader.index] = .failure(PlatformError(description: "vehicle log neither claimed nor found"))
                    continue
                }
                results[leader.index] = .success(sameContent ? .replayed(key) : .conflict)
            }
        } else {
            try await copyClaims(leaders, of: batch, on: connection)
        }
        new.sort { $0.index < $1.index }  // stored, and on the flagged feed, in the order they came

        // 3. Store the new logs.
        let inserted = try await insert(new, of: items, receivedAt: terminals.now, on: connection)
        for (position, leader) in new.enumerated() {
            results[leader.index] = .success(.stored(inserted[position]))
        }

        for (index, leader) in followers {
            guard case .success(let outcome)? = results[leader] else {
                results[index] = results[leader]
                continue
            }
            let same = batch.hashes[index] == batch.hashes[leader]
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

    private struct Terminal {
        /// The terminal's place in the claiming order: by checkpoint, then id.
        var rank: Int
        var retiredAt: Date?
    }

    /// The batch's terminals, their checkpoints by rank, and the transaction's start (`now()`, what
    /// `received_at` defaults to, on every row: a batch with no known terminal stores nothing).
    private func terminals(_ ids: Set<String>, on connection: PostgresConnection) async throws
        -> (found: [String: Terminal], checkpoints: [String], now: Date)
    {
        var found: [String: Terminal] = [:]
        var checkpoints: [String] = []
        var now = Date()
        let rows = try await connection.queryWhenOpen(
            """
            SELECT terminal_id, checkpoint, retired_at, now() FROM checkpoint.terminals WHERE terminal_id = ANY(\(Array(ids)))
            ORDER BY checkpoint, terminal_id
            """,
            logger: logger)
        for try await (id, checkpoint, retired, start) in rows.decode((String, String, Date?, Date).self) {
            found[id] = Terminal(rank: checkpoints.count, retiredAt: retired)
            checkpoints.append(checkpoint)
            now = start
        }
        return (found, checkpoints, now)
    }

    private struct Key: Hashable {
        var terminalID: String
        var sequence: Int64
    }

    /// Claims every leader's key with one COPY: fails (`log_sequences_pkey`) if one was claimed before.
    private func copyClaims(_ leaders: [Leader], of batch: Batch, on connection: PostgresConnection) async throws {
        try await connection.copy(
            into: "checkpoint.log_sequences", columns: ["checkpoint", "terminal_id", "sequence", "observed_at", "content_hash"],
            logger: logger
        ) { rows in
            for leader in leaders {
                let log = batch.items[leader.index]
                rows.text(leader.checkpoint)
                rows.text(log.terminalID)
                rows.integer(log.sequence)
                rows.timestamp(log.observedAt)
                rows.text(batch.hashes[leader.index])
                rows.endRow()
            }
        }
    }

    /// Claims each leader's key where it is free; returns the keys this batch claimed.
    private func claim(_ leaders: [Leader], of batch: Batch, on connection: PostgresConnection) async throws -> Set<Key> {
        guard !leaders.isEmpty else { return [] }
        let logs = leaders.map { batch.items[$0.index] }
        let query = PostgresQuery(
            unsafeSQL: """
                INSERT INTO checkpoint.log_sequences (checkpoint, terminal_id, sequence, observed_at, content_hash)
                SELECT checkpoint, terminal_id, sequence, observed_at, content_hash
                FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::text[]) WITH ORDINALITY
                     AS n(checkpoint, terminal_id, sequence, observed_at, content_hash, position)
                ORDER BY position  -- the claiming order
                ON CONFLICT DO NOTHING
                RETURNING terminal_id, sequence
                """,
            binds: binds(
                leaders.map(\.checkpoint), logs.map(\.terminalID), logs.map(\.sequence), logs.map(\.observedAt),
                leaders.map { batch.hashes[$0.index] }))
        var claimed: Set<Key> = []
        for try await (terminal, sequence) in try await connection.queryWhenOpen(query, logger: logger).decode((String, Int64).self) {
            claimed.insert(Key(terminalID: terminal, sequence: sequence))
        }
        return claimed
    }

    /// For each leader whose key was claimed before: where the stored log is, and whether it is the same.
    private func stored(_ leaders: [Leader], of batch: Batch, on connection: PostgresConnection) async throws
        -> [Int: (VehicleLogKey, sameContent: Bool)]
    {
        guard !leaders.isEmpty else { return [:] }
        let logs = leaders.map { batch.items[$0.index] }
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT k.position, s.observed_at, s.content_hash = k.content_hash
                FROM unnest($1::int[], $2::text[], $3::text[], $4::int8[], $5::text[])
                     AS k(position, checkpoint, terminal_id, sequence, content_hash)
                JOIN checkpoint.log_sequences s
                  ON s.checkpoint = k.checkpoint AND s.terminal_id = k.terminal_id AND s.sequence = k.sequence
                """,
            binds: binds(
                Array(0..<leaders.count), leaders.map(\.checkpoint), logs.map(\.terminalID), logs.map(\.sequence),
                leaders.map { batch.hashes[$0.index] }))
        var found: [Int: (VehicleLogKey, Bool)] = [:]
        for try await (position, observedAt, same) in try await connection.queryWhenOpen(query, logger: logger).decode((Int, Date, Bool).self) {
            let log = logs[position]
            found[position] = (
                VehicleLogKey(
                    checkpoint: leaders[position].checkpoint, terminalID: log.terminalID, sequence: log.sequence,
                    observedAt: observedAt),
                same
            )
        }
        return found
    }

    /// Copies the leaders' logs into `vehicle_logs`; returns them as stored, in order.
    private func insert(_ leaders: [Leader], of items: [NewVehicleLog], receivedAt: Date, on connection: PostgresConnection)
        async throws -> [StoredVehicleLog]
    {
        guard !leaders.isEmpty else { return [] }
        let logs = leaders.map { items[$0.index] }
        let flags = try await BatchFlags.look(up: logs, on: connection, logger: logger)
        let stored = zip(logs, leaders).map { log, leader in
            StoredVehicleLog(
                log: log, checkpoint: leader.checkpoint, receivedAt: receivedAt, riskArea: flags.riskArea(log),
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
        let areas = try await connection.queryWhenOpen(
            """
            SELECT code, ((extract(epoch FROM effective_from) - 946684800) * 1000000)::int8,
                   ((extract(epoch FROM effective_until) - 946684800) * 1000000)::int8
            FROM checkpoint.risk_areas WHERE level IN ('medium', 'high') AND code = ANY(\(codes))
            """,
            logger: logger)
        for try await (code, from, until) in areas.decode((String, Int64, Int64?).self) {
            flags.riskAreas[code, default: []].append((from, until))
        }
        let plates = try await connection.queryWhenOpen(
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
