import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// Vehicle logs in schema `checkpoint`: ingest through a ``GroupCommitter`` (``IngestBatches``), and
/// the reads — listings, a plate's history, the flagged feed, statistics, exports.
struct VehicleLogStore: Sendable {
    let client: DatabasePool
    let committer: GroupCommitter<NewVehicleLog, IngestOutcome>
    let logger: Logger

    init(client: DatabasePool, partitions: PartitionKeeper, logger: Logger, maxBatch: Int = 2000, lanes: Int = 2) {
        self.client = client
        self.logger = logger
        let batches = IngestBatches(client: client, partitions: partitions, logger: logger)
        self.committer = GroupCommitter(maxBatch: maxBatch, lanes: lanes) { try await batches.commit($0) }
    }

    /// One result per log, in order, once their batch committed (see ``GroupCommitter``).
    func ingest(_ logs: [NewVehicleLog]) async throws -> [Result<IngestOutcome, any Error>] {
        try await committer.submit(contentsOf: logs)
    }

    func log(at key: VehicleLogKey) async throws -> StoredVehicleLog? {
        try await logs(
            PostgresQuery(
                unsafeSQL: """
                    SELECT \(VehicleLogRow.columns) FROM checkpoint.vehicle_logs
                    WHERE checkpoint = $1 AND observed_at = $2 AND terminal_id = $3 AND sequence = $4
                    """,
                binds: binds(key.checkpoint, key.observedAt, key.terminalID, key.sequence))
        ).first
    }

    func list(_ filter: VehicleLogFilter, after: VehicleLogPageKey?, limit: Int) async throws -> [StoredVehicleLog] {
        var sql = SQLConditions()
        if let checkpoint = filter.checkpoint { sql.add("checkpoint = \(sql.bind(checkpoint))") }
        if let plate = filter.plate { sql.add("plate = \(sql.bind(plate))") }
        if let from = filter.observedFrom { sql.add("observed_at >= \(sql.bind(from))") }
        if let before = filter.observedBefore { sql.add("observed_at < \(sql.bind(before))") }
        if filter.flaggedOnly { sql.add("flagged") }
        if let flag = filter.flag { sql.add(flag.condition) }
        if let province = filter.originProvince { sql.add("origin_province = \(sql.bind(province))") }
        if let after {
            sql.add("""
                (observed_at, checkpoint, terminal_id, sequence) < \
                (to_timestamp(\(sql.bind(after.observedAtMicros))::float8 / 1e6), \(sql.bind(after.checkpoint)), \
                \(sql.bind(after.terminalID)), \(sql.bind(after.sequence))::int8)
                """)
        }
        return try await logs(PostgresQuery(
            unsafeSQL: """
                SELECT \(VehicleLogRow.columns) FROM checkpoint.vehicle_logs \(sql.whereClause)
                ORDER BY observed_at DESC, checkpoint DESC, terminal_id DESC, sequence DESC LIMIT \(limit)
                """,
            binds: sql.bindings))
    }

    /// Flagged logs committed after `cursor` whose transactions are all finished, in feed order.
    func flagged(after cursor: FeedCursor, checkpoint: String?, limit: Int) async throws -> [(StoredVehicleLog, FeedCursor)] {
        var sql = SQLConditions()
        sql.add("flagged")
        sql.add("(feed_xid, feed_seq) > (\(sql.bind(String(cursor.xid)))::text::xid8, \(sql.bind(cursor.seq))::int8)")
        sql.add("feed_xid < pg_snapshot_xmin(pg_current_snapshot())")
        if let checkpoint { sql.add("checkpoint = \(sql.bind(checkpoint))") }
        var changes: [(StoredVehicleLog, FeedCursor)] = []
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT \(VehicleLogRow.columns), feed_xid::text AS xid, feed_seq FROM checkpoint.vehicle_logs
                \(sql.whereClause) ORDER BY feed_xid, feed_seq LIMIT \(limit)
                """,
            binds: sql.bindings)
        for try await row in try await client.query(query, logger: logger) {
            let access = row.makeRandomAccess()
            let xid = UInt64(try access["xid"].decode(String.self)) ?? 0
            changes.append((try VehicleLogRow.decode(row), FeedCursor(xid: xid, seq: try access["feed_seq"].decode(Int64.self))))
        }
        return changes
    }

    /// Logs observed in [from, before), oldest first, after `after`: one page of an export.
    func export(from: Date, before: Date, checkpoint: String?, after: VehicleLogPageKey?, limit: Int) async throws
        -> [StoredVehicleLog]
    {
        var sql = SQLConditions()
        sql.add("observed_at >= \(sql.bind(from))")
        sql.add("observed_at < \(sql.bind(before))")
        if let checkpoint { sql.add("checkpoint = \(sql.bind(checkpoint))") }
        if let after {
            sql.add("""
                (observed_at, checkpoint, terminal_id, sequence) > \
                (to_timestamp(\(sql.bind(after.observedAtMicros))::float8 / 1e6), \(sql.bind(after.checkpoint)), \
                \(sql.bind(after.terminalID)), \(sql.bind(after.sequence))::int8)
                """)
        }
        return try await logs(PostgresQuery(
            unsafeSQL: """
                SELECT \(VehicleLogRow.columns) FROM checkpoint.vehicle_logs \(sql.whereClause)
                ORDER BY observed_at, checkpoint, terminal_id, sequence LIMIT \(limit)
                """,
            binds: sql.bindings))
    }

    func statistics(_ request: StatisticsRequest) async throws -> [CheckpointStatisticsRow] {
        var sql = SQLConditions()
        sql.add("observed_at >= \(sql.bind(request.from))")
        sql.add("observed_at < \(sql.bind(request.before))")
        if let checkpoint = request.checkpoint { sql.add("checkpoint = \(sql.bind(checkpoint))") }
        let province = request.byOriginProvince ? "origin_province" : "''::text"
        // Buckets are hours or days of China Standard Time.
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT checkpoint,
                       date_trunc('\(request.granularity)', observed_at AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai' AS bucket,
                       \(province) AS province, count(*)::int8, sum(people)::int8, sum(fevers)::int8,
                       sum(red_codes)::int8, sum(yellow_codes)::int8, (count(*) FILTER (WHERE flagged))::int8
                FROM checkpoint.vehicle_logs \(sql.whereClause)
                GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
                """,
            binds: sql.bindings)
        var rows: [CheckpointStatisticsRow] = []
        let decoded = try await client.query(query, logger: logger)
            .decode((String, Date, String, Int64, Int64, Int64, Int64, Int64, Int64).self)
        for try await (checkpoint, bucket, province, vehicles, people, fevers, red, yellow, flagged) in decoded {
            rows.append(CheckpointStatisticsRow(
                checkpoint: checkpoint, bucketStart: bucket, originProvince: province, vehicles: vehicles, people: people,
                fevers: fevers, redCodes: red, yellowCodes: yellow, flaggedVehicles: flagged))
        }
        return rows
    }

    private func logs(_ query: PostgresQuery) async throws -> [StoredVehicleLog] {
        var logs: [StoredVehicleLog] = []
        for try await row in try await client.query(query, logger: logger) { logs.append(try VehicleLogRow.decode(row)) }
        return logs
    }
}

/// Filters of ListVehicleLogs and GetPlateHistory.
struct VehicleLogFilter: Sendable, Equatable {
    enum FlagKind: String, Sendable {
        case fever, redCode, yellowCode, riskArea, watchedPlate

        var condition: String {
            switch self {
            case .fever: "fevers > 0"
            case .redCode: "red_codes > 0"
            case .yellowCode: "yellow_codes > 0"
            case .riskArea: "risk_area"
            case .watchedPlate: "watched_plate"
            }
        }
    }

    var checkpoint: String?
    var plate: String?
    var observedFrom: Date?
    var observedBefore: Date?
    var flaggedOnly = false
    var flag: FlagKind?
    var originProvince: String?

    var fingerprint: String {
        [checkpoint ?? "", plate ?? "", observedFrom.map { "\($0.timeIntervalSince1970)" } ?? "",
         observedBefore.map { "\($0.timeIntervalSince1970)" } ?? "", flaggedOnly ? "f" : "", flag?.rawValue ?? "",
         originProvince ?? ""].joined(separator: "|")
    }
}

/// Where a page of logs ended.
struct VehicleLogPageKey: Sendable, Equatable, Codable {
    var observedAtMicros: Int64
    var checkpoint: String
    var terminalID: String
    var sequence: Int64

    init(_ log: StoredVehicleLog) {
        observedAtMicros = Int64((log.log.observedAt.timeIntervalSince1970 * 1_000_000).rounded())
        checkpoint = log.checkpoint
        terminalID = log.log.terminalID
        sequence = log.log.sequence
    }
}

struct StatisticsRequest: Sendable {
    var checkpoint: String?
    var from: Date
    var before: Date
    /// `hour` or `day`: a date_trunc field.
    var granularity: String
    var byOriginProvince: Bool
}

struct CheckpointStatisticsRow: Sendable, Equatable {
    var checkpoint: String
    var bucketStart: Date
    var originProvince: String
    var vehicles: Int64
    var people: Int64
    var fevers: Int64
    var redCodes: Int64
    var yellowCodes: Int64
    var flaggedVehicles: Int64
}

/// The columns of `checkpoint.vehicle_logs` a ``StoredVehicleLog`` is read from.
enum VehicleLogRow {
    static let columns = """
        checkpoint, terminal_id, sequence, observed_at, received_at, plate, plate_color, vehicle_type, direction, \
        origin_code, origin_province, plate_region, temperatures, health_codes, driver_phone, destination_district, \
        risk_area, watched_plate
        """

    static func decode(_ row: PostgresRow) throws -> StoredVehicleLog {
        let row = row.makeRandomAccess()
        let log = NewVehicleLog(
            terminalID: try row["terminal_id"].decode(String.self),
            sequence: try row["sequence"].decode(Int64.self),
            plate: try row["plate"].decode(String.self),
            plateColor: try row["plate_color"].decode(String.self),
            vehicleType: try row["vehicle_type"].decode(String.self),
            direction: try row["direction"].decode(String.self),
            originCode: try row["origin_code"].decode(String.self),
            originProvince: try row["origin_province"].decode(String.self),
            plateRegion: try row["plate_region"].decode(String.self),
            temperatures: try row["temperatures"].decode([Int].self),
            healthCodes: try row["health_codes"].decode([String].self),
            driverPhone: try row["driver_phone"].decode(String.self),
            destinationDistrict: try row["destination_district"].decode(String.self),
            observedAt: try row["observed_at"].decode(Date.self))
        return StoredVehicleLog(
            log: log, checkpoint: try row["checkpoint"].decode(String.self),
            receivedAt: try row["received_at"].decode(Date.self), riskArea: try row["risk_area"].decode(Bool.self),
            watchedPlate: try row["watched_plate"].decode(Bool.self))
    }
}
