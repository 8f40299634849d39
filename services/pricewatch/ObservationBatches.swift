import Foundation
import KangyiPlatform
import Logging
import PostgresNIO
import Synchronization

/// One group commit of price observations, in a single transaction (nobody is acknowledged before the
/// commit):
///
/// 1. The batch's commodities and outlets: an unknown one refuses its observation.
/// 2. The ledger (`observation_keys`) claims each (submitter, observation id), in key order so two
///    batches cannot deadlock: with one COPY, or — when a key was used before — INSERT … ON CONFLICT DO
///    NOTHING (``LedgerClaims``); a claim that loses is a duplicate (same content hash) or a refused reuse
///    of the id. The same key twice in one batch is settled after its first.
/// 3. What the rules need for the batch, a query each: controls in force, baselines, class thresholds,
///    sellers' pre-epidemic transactions, prices before each freeze, the 7-day windows.
/// 4. The observations (one COPY into the month partitions), the day aggregates (one upsert,
///    in key order so two batches cannot deadlock) and the alerts the rules found.
///
/// Rules consult what was committed before the batch; `checkRules: false` (a historical import) stores
/// and aggregates without raising alerts.
struct ObservationBatches: Sendable {
    let client: DatabasePool
    let partitions: MonthPartitions
    let rules: Rules.Settings
    let checkRules: Bool
    let logger: Logger
    /// The sudden-jump rule's weeks of prices, fetched by what changed.
    let dayPrices = DayPriceCache()
    private let claims = LedgerClaims(constraint: "observation_keys_pkey")

    func commit(_ items: [NewObservation]) async throws -> [Result<ObservationOutcome, any Error>] {
        try await partitions.ensure(items.map(\.observedAt))
        let hashes = items.map(\.contentHash)
        return try await claims.transaction(on: client, logger: logger) { mode, connection in
            try await commit(items, hashes: hashes, claiming: mode, on: connection).map { .success($0) }
        }
    }

    private struct Key: Hashable {
        var submitter: String
        var observationID: String
    }

    /// `hashes[i]` is `items[i].contentHash`.
    private func commit(_ items: [NewObservation], hashes: [String], claiming: ClaimMode, on connection: PostgresConnection)
        async throws -> [ObservationOutcome]
    {
        var outcomes = [ObservationOutcome?](repeating: nil, count: items.count)

        // 1. Commodities and outlets.
        // With the transaction's start on every row (`now()`, what `received_at` defaults to): a batch with
        // no known commodity stores nothing.
        var commodities: [String: (commodityClass: String, unitQuantity: Int64)] = [:]
        var now = Date()
        for try await (code, commodityClass, quantity, start) in try await connection.queryWhenOpen(
            "SELECT code, class, unit_quantity, now() FROM pricewatch.commodities WHERE code = ANY(\(Array(Set(items.map(\.commodity)))))",
            logger: logger
        ).decode((String, String, Int64, Date).self) {
            commodities[code] = (commodityClass, quantity)
            now = start
        }
        var districts: [String: String] = [:]
        for try await (code, district) in try await connection.queryWhenOpen(
            "SELECT code, district FROM pricewatch.outlets WHERE code = ANY(\(Array(Set(items.map(\.outlet)))))", logger: logger
        ).decode((String, String).self) {
            districts[code] = district
        }
        var known: [(index: Int, subject: Rules.Subject)] = []
        for (index, item) in items.enumerated() {
            let commodity = commodities[item.commodity], district = districts[item.outlet]
            guard let commodity, let district else {
                var violations: [ServiceError.FieldViolation] = []
                if commodity == nil {
                    violations.append(.init(field: "commodity", reason: "UNKNOWN_COMMODITY", description: "no commodity has this code"))
                }
                if district == nil {
                    violations.append(.init(field: "outlet", reason: "UNKNOWN_OUTLET", description: "no outlet has this code"))
                }
                outcomes[index] = .refused(violations)
                continue
            }
            known.append((index, Rules.Subject(
                commodity: item.commodity, commodityClass: commodity.commodityClass, district: district, outlet: item.outlet,
                observedAt: item.observedAt,
                unitPriceFen: UnitPrice.normalise(item.priceFen, quantity: item.quantity, unitQuantity: commodity.unitQuantity),
                unitCostFen: item.purchaseCostFen == 0
                    ? 0 : UnitPrice.normalise(item.purchaseCostFen, quantity: item.quantity, unitQuantity: commodity.unitQuantity))))
        }

        // 2. Claim the keys in key order; settle the claims that lost (a repeat inside the batch loses to its first).
        known.sort {
            (items[$0.index].submitter, items[$0.index].observationID, $0.index)
                < (items[$1.index].submitter, items[$1.index].observationID, $1.index)
        }
        var firsts: [(index: Int, subject: Rules.Subject)] = []
        var lost: [Int] = []
        for (position, entry) in known.enumerated() {
            let previous = position > 0 ? items[known[position - 1].index] : nil
            if previous?.submitter == items[entry.index].submitter && previous?.observationID == items[entry.index].observationID {
                lost.append(entry.index)
            } else {
                firsts.append(entry)
            }
        }
        var new = firsts
        if claiming == .settlingUsedKeys {
            let claimed = try await claim(firsts, of: items, hashes: hashes, on: connection)
            new = []
            for first in firsts {
                let key = Key(submitter: items[first.index].submitter, observationID: items[first.index].observationID)
                if claimed.contains(key) { new.append(first) } else { lost.append(first.index) }
            }
        } else {
            try await copyClaims(firsts, of: items, hashes: hashes, on: connection)
        }
        new.sort { $0.index < $1.index }  // stored, and alerts raised, in the order they came
        let same = try await sameAsStored(lost, of: items, hashes: hashes, on: connection)
        for index in lost {
            outcomes[index] = same.contains(index)
                ? .duplicate
                : .refused([.init(
                    field: "observation_id", reason: "OBSERVATION_ID_REUSED",
                    description: "this submitter already sent another observation under this id")])
        }

        // 3, 4. Rules, then the rows.
        let findings = checkRules ? try await self.findings(new.map(\.subject), on: connection) : new.map { _ in [] }
        try await insert(new, of: items, on: connection)
        try await aggregate(new.map(\.subject), on: connection)
        let alerts = try await raise(zip(new, findings).map { (items[$0.0.index], $0.0.subject, $0.1) }, on: connection)
        for (position, entry) in new.enumerated() {
            let item = items[entry.index]
            outcomes[entry.index] = .stored(
                StoredObservation(
                    observation: item, district: entry.subject.district, unitPriceFen: entry.subject.unitPriceFen,
                    unitCostFen: entry.subject.unitCostFen, receivedAt: now),
                alerts[position])
        }
        return outcomes.map { $0 ?? .refused([]) }
    }

    /// Claims every key with one COPY: fails (`observation_keys_pkey`) if one was claimed before.
    private func copyClaims(
        _ firsts: [(index: Int, subject: Rules.Subject)], of items: [NewObservation], hashes: [String],
        on connection: PostgresConnection
    ) async throws {
        try await connection.copy(
            into: "pricewatch.observation_keys", columns: ["submitter", "observation_id", "district", "observed_at", "content_hash"],
            logger: logger
        ) { rows in
            for (index, subject) in firsts {
                rows.text(items[index].submitter)
                rows.text(items[index].observationID)
                rows.text(subject.district)
                rows.timestamp(items[index].observedAt)
                rows.text(hashes[index])
                rows.endRow()
            }
        }
    }

    /// Claims each key where it is free; returns the keys this batch claimed.
    private func claim(
        _ firsts: [(index: Int, subject: Rules.Subject)], of items: [NewObservation], hashes: [String],
        on connection: PostgresConnection
    ) async throws -> Set<Key> {
        guard !firsts.isEmpty else { return [] }
        let indices = firsts.map(\.index)
        let query = PostgresQuery(
            unsafeSQL: """
                INSERT INTO pricewatch.observation_keys (submitter, observation_id, district, observed_at, content_hash)
                SELECT submitter, observation_id, district, observed_at, content_hash
                FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) WITH ORDINALITY
                     AS n(submitter, observation_id, district, observed_at, content_hash, position)
                ORDER BY position  -- the claiming order
                ON CONFLICT DO NOTHING
                RETURNING submitter, observation_id
                """,
            binds: binds(
                indices.map { items[$0].submitter }, indices.map { items[$0].observationID },
                firsts.map(\.subject.district), indices.map { items[$0].observedAt }, indices.map { hashes[$0] }))
        var claimed: Set<Key> = []
        for try await (submitter, id) in try await connection.queryWhenOpen(query, logger: logger).decode((String, String).self) {
            claimed.insert(Key(submitter: submitter, observationID: id))
        }
        return claimed
    }

    /// The indices of `items` whose key is stored with the same content.
    private func sameAsStored(_ indices: [Int], of items: [NewObservation], hashes: [String], on connection: PostgresConnection)
        async throws -> Set<Int>
    {
        guard !indices.isEmpty else { return [] }
        var same: Set<Int> = []
        let rows = try await connection.queryWhenOpen(
            """
            SELECT n.index FROM pricewatch.observation_keys k
            JOIN unnest(\(indices)::int[], \(indices.map { items[$0].submitter })::text[],
                        \(indices.map { items[$0].observationID })::text[], \(indices.map { hashes[$0] })::text[])
                 AS n(index, submitter, observation_id, content_hash)
              ON n.submitter = k.submitter AND n.observation_id = k.observation_id AND k.content_hash = n.content_hash
            """, logger: logger)
        for try await index in rows.decode(Int.self) { same.insert(index) }
        return same
    }

    /// Claimed observations cannot conflict: COPY, with nothing to plan or return (`received_at` is the
    /// table's default, now()).
    private func insert(
        _ new: [(index: Int, subject: Rules.Subject)], of items: [NewObservation], on connection: PostgresConnection
    ) async throws {
        try await connection.copy(into: "pricewatch.observations", columns: Self.columns, logger: logger) { copy in
            for (index, subject) in new {
                let observation = items[index]
                copy.text(subject.district)
                copy.text(observation.commodity)
                copy.text(observation.outlet)
                copy.timestamp(observation.observedAt)
                copy.text(observation.submitter)
                copy.text(observation.observationID)
                copy.text(observation.source)
                copy.integer(observation.priceFen)
                copy.integer(observation.quantity)
                copy.integer(observation.purchaseCostFen)
                copy.integer(subject.unitPriceFen)
                copy.integer(subject.unitCostFen)
                copy.endRow()
            }
        }
    }

    private static let columns = [
        "district", "commodity", "outlet", "observed_at", "submitter", "observation_id", "source", "price_fen", "quantity",
        "purchase_cost_fen", "unit_price_fen", "unit_cost_fen",
    ]

    /// Appends each price to its (district, commodity, day) aggregate: to the day's last chunk, which a
    /// batch starts anew once the day holds another ``chunkSize`` prices — so a batch rewrites at most a
    /// chunk, however full the day. The batch first locks its days (in one order, so two lanes cannot
    /// deadlock): the chunk is then chosen from every committed price, and a chunk overfills by at most
    /// one batch — two lanes choosing from the same snapshot would both append to one chunk, over and over.
    private func aggregate(_ subjects: [Rules.Subject], on connection: PostgresConnection) async throws {
        guard !subjects.isEmpty else { return }
        try await connection.lockKeys(
            subjects.map { "\($0.district)|\($0.commodity)|\($0.day)" }, space: Self.lockSpace, logger: logger)
        try await connection.queryWhenOpen(
            """
            INSERT INTO pricewatch.daily_prices AS d (district, commodity, day, chunk, count, prices)
            SELECT n.district, n.commodity, n.day,
                   coalesce((SELECT sum(e.count) FROM pricewatch.daily_prices e
                             WHERE e.district = n.district AND e.commodity = n.commodity AND e.day = n.day), 0)
                       / \(Self.chunkSize),
                   n.count, n.prices
            FROM (SELECT district, commodity, day::date AS day, count(*)::int AS count, array_agg(price) AS prices
                  FROM unnest(\(subjects.map(\.district))::text[], \(subjects.map(\.commodity))::text[],
                              \(subjects.map(\.day))::text[],
                              \(subjects.map(\.unitPriceFen))::int8[]) AS p(district, commodity, day, price)
                  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3) n
            ON CONFLICT (district, commodity, day, chunk) DO UPDATE
            SET count = d.count + EXCLUDED.count, prices = d.prices || EXCLUDED.prices
            """, logger: logger)
    }

    /// About how many prices one `daily_prices` row holds (a batch may overfill the last chunk by its own size).
    static let chunkSize = 2_000

    /// The most observations one group commit carries: several callers' batches, so this, not one
    /// call's size, bounds a chunk's overfill.
    static let largestCommit = 2_000

    /// The first key of price watch's advisory locks ("PRCW"), apart from other services' locks.
    static let lockSpace: Int32 = 0x5052_4357

    private func raise(_ found: [(NewObservation, Rules.Subject, [Rules.Finding])], on connection: PostgresConnection) async throws
        -> [[AlertRecord]]
    {
        var records = found.map { _ in [AlertRecord]() }
        var rows: [(position: Int, record: AlertRecord)] = []
        for (position, (item, subject, findings)) in found.enumerated() {
            for finding in findings {
                rows.append((position, AlertRecord(
                    id: UUID(), kind: finding.kind, status: "open", commodity: subject.commodity, outlet: subject.outlet,
                    district: subject.district, submitter: item.submitter, observationID: item.observationID,
                    observedAt: item.observedAt, figures: finding.figures, controlID: finding.controlID,
                    createdAt: Date(), updatedAt: Date())))
            }
        }
        guard !rows.isEmpty else { return records }
        let alerts = rows.map(\.record)
        let created = try await connection.queryWhenOpen(
            """
            INSERT INTO pricewatch.alerts (id, kind, commodity, outlet, district, submitter, observation_id, observed_at, figures,
                price_control_id)
            SELECT id, kind, commodity, outlet, district, submitter, observation_id, observed_at, figures::jsonb,
                NULLIF(control, '')::uuid
            FROM unnest(\(alerts.map(\.id))::uuid[], \(alerts.map(\.kind))::text[], \(alerts.map(\.commodity))::text[],
                        \(alerts.map(\.outlet))::text[], \(alerts.map(\.district))::text[], \(alerts.map(\.submitter))::text[],
                        \(alerts.map(\.observationID))::text[], \(alerts.map(\.observedAt))::timestamptz[],
                        \(alerts.map(\.figuresJSON))::text[], \(alerts.map { $0.controlID?.uuidString ?? "" })::text[])
                 AS n(id, kind, commodity, outlet, district, submitter, observation_id, observed_at, figures, control)
            RETURNING id, created_at
            """, logger: logger)
        var createdAt: [UUID: Date] = [:]
        for try await (id, at) in created.decode((UUID, Date).self) { createdAt[id] = at }
        for (position, record) in rows {
            var record = record
            record.createdAt = createdAt[record.id] ?? record.createdAt
            record.updatedAt = record.createdAt
            records[position].append(record)
        }
        return records
    }

    // MARK: What the rules need

    private func findings(_ subjects: [Rules.Subject], on connection: PostgresConnection) async throws -> [[Rules.Finding]] {
        guard !subjects.isEmpty else { return [] }
        let times = subjects.map(\.observedAt)
        var controls: [Rules.Control] = []
        for try await row in try await connection.queryWhenOpen(
            """
            SELECT id, kind, commodity, class, district, ceiling_fen, (max_markup * 10000)::int8, effective_from, effective_until
            FROM pricewatch.price_controls
            WHERE effective_from <= \(times.max()!) AND (effective_until IS NULL OR effective_until > \(times.min()!))
            """, logger: logger
        ).decode((UUID, String, String?, String?, String?, Int64?, Int64?, Date, Date?).self) {
            controls.append(Rules.Control(
                id: row.0, kind: row.1, commodity: row.2, commodityClass: row.3, district: row.4, ceilingFen: row.5,
                maxMarkupBasisPoints: row.6, effectiveFrom: row.7, effectiveUntil: row.8))
        }
        var thresholds: [String: Int64] = [:]
        for try await (commodityClass, basisPoints) in try await connection.queryWhenOpen(
            "SELECT class, (rise_over_baseline * 10000)::int8 FROM pricewatch.class_thresholds", logger: logger
        ).decode((String, Int64).self) {
            thresholds[commodityClass] = basisPoints
        }
        let pairs = Array(Set(subjects.map { "\($0.district)|\($0.commodity)" })).sorted().map { $0.split(separator: "|").map(String.init) }
        var baselines: [String: Int64] = [:]
        for try await (district, commodity, price) in try await connection.queryWhenOpen(
            """
            SELECT b.district, b.commodity, b.price_fen FROM pricewatch.baselines b
            JOIN unnest(\(pairs.map { $0[0] })::text[], \(pairs.map { $0[1] })::text[]) AS k(district, commodity)
              ON k.district = b.district AND k.commodity = b.commodity
            """, logger: logger
        ).decode((String, String, Int64).self) {
            baselines["\(district)|\(commodity)"] = price
        }
        let bases = try await baseTransactions(subjects.filter { $0.unitCostFen > 0 }, on: connection)
        let frozen = try await frozenPrices(subjects, controls: controls.filter { $0.kind == "freeze" }, on: connection)
        let windows = try await windowPrices(subjects, pairs: pairs, on: connection)
        // Per observation only look-ups: no key is built that is not needed, and a batch's observations
        // mostly share their (district, commodity, day) and its window.
        var summaries: [WindowKey: Rules.Window] = [:]
        return subjects.map { subject in
            let pair = "\(subject.district)|\(subject.commodity)"
            let key = WindowKey(pair: pair, day: subject.day)
            let window = summaries[key] ?? {
                let first = Rules.windowStart(endingOn: key.day)
                let summary = Rules.Window(
                    sortedChunks: (windows[pair] ?? []).filter { $0.day >= first && $0.day <= key.day }.map(\.prices))
                summaries[key] = summary
                return summary
            }()
            let context = Rules.Context(
                controls: controls,
                base: subject.unitCostFen > 0 ? bases["\(subject.outlet)|\(subject.commodity)"] : nil,  // read by the markup rules only
                baselineFen: baselines[pair], riseThresholdBasisPoints: thresholds[subject.commodityClass],
                frozenPrices: frozen.isEmpty
                    ? [:]
                    : frozen.filter { $0.key.outlet == subject.outlet && $0.key.commodity == subject.commodity }
                        .reduce(into: [:]) { $0[$1.key.control] = $1.value },
                window: window)
            return Rules.check(subject, context, settings: rules)
        }
    }

    private struct WindowKey: Hashable {
        var pair: String
        var day: String
    }

    /// Each seller's last transaction with a known cost on or before the base date.
    private func baseTransactions(_ subjects: [Rules.Subject], on connection: PostgresConnection) async throws
        -> [String: (price: Int64, cost: Int64)]
    {
        guard !subjects.isEmpty, let baseDay = CalendarDay.start(of: rules.baseDate) else { return [:] }
        let pairs = Array(Set(subjects.map { "\($0.outlet)|\($0.commodity)" })).sorted().map { $0.split(separator: "|").map(String.init) }
        var found: [String: (Int64, Int64)] = [:]
        for try await (outlet, commodity, price, cost) in try await connection.queryWhenOpen(
            """
            SELECT k.outlet, k.commodity, b.unit_price_fen, b.unit_cost_fen
            FROM unnest(\(pairs.map { $0[0] })::text[], \(pairs.map { $0[1] })::text[]) AS k(outlet, commodity)
            CROSS JOIN LATERAL (
                SELECT unit_price_fen, unit_cost_fen FROM pricewatch.observations o
                WHERE o.outlet = k.outlet AND o.commodity = k.commodity AND o.unit_cost_fen > 0
                  AND o.observed_at < \(baseDay.addingTimeInterval(86_400))
                ORDER BY o.observed_at DESC, o.received_at DESC, o.observation_id DESC LIMIT 1) b
            """, logger: logger
        ).decode((String, String, Int64, Int64).self) {
            found["\(outlet)|\(commodity)"] = (price, cost)
        }
        return found
    }

    private struct FreezeKey: Hashable {
        var outlet: String
        var commodity: String
        var control: UUID
    }

    /// For each freeze that may apply: the outlet's last unit price of the commodity before it began.
    private func frozenPrices(_ subjects: [Rules.Subject], controls: [Rules.Control], on connection: PostgresConnection)
        async throws -> [FreezeKey: Int64]
    {
        var keys: Set<FreezeKey> = []
        var starts: [UUID: Date] = [:]
        for subject in subjects {
            for control in controls where control.applies(to: subject) {
                keys.insert(FreezeKey(outlet: subject.outlet, commodity: subject.commodity, control: control.id))
                starts[control.id] = control.effectiveFrom
            }
        }
        guard !keys.isEmpty else { return [:] }
        let list = Array(keys)
        var found: [FreezeKey: Int64] = [:]
        for try await (outlet, commodity, control, price) in try await connection.queryWhenOpen(
            """
            SELECT k.outlet, k.commodity, k.control, b.unit_price_fen
            FROM unnest(\(list.map(\.outlet))::text[], \(list.map(\.commodity))::text[], \(list.map(\.control))::uuid[],
                        \(list.map { starts[$0.control]! })::timestamptz[]) AS k(outlet, commodity, control, since)
            CROSS JOIN LATERAL (
                SELECT unit_price_fen FROM pricewatch.observations o
                WHERE o.outlet = k.outlet AND o.commodity = k.commodity AND o.observed_at < k.since
                ORDER BY o.observed_at DESC, o.received_at DESC, o.observation_id DESC LIMIT 1) b
            """, logger: logger
        ).decode((String, String, UUID, Int64).self) {
            found[FreezeKey(outlet: outlet, commodity: commodity, control: control)] = price
        }
        return found
    }

    /// The day aggregates each subject's 7-day window is made of.
    private func windowPrices(_ subjects: [Rules.Subject], pairs: [[String]], on connection: PostgresConnection) async throws
        -> [String: [(day: String, prices: SortedPrices)]]
    {
        let days = subjects.map(\.day)
        guard let earliest = days.min(), let latest = days.max() else { return [:] }
        return try await dayPrices.prices(
            pairs: pairs, first: Rules.windowStart(endingOn: earliest), last: latest, on: connection, logger: logger)
    }
}

/// Monthly partitions of `pricewatch.observations` (China Standard Time), made the first time a batch
/// needs one — a historical import reaches back years — outside the batch's transaction, under an
/// advisory lock so replicas do not race. Known months are remembered.
final class MonthPartitions: Sendable {
    let client: DatabasePool
    let logger: Logger
    private let known = Mutex<Set<String>>([])

    init(client: DatabasePool, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    func ensure(_ dates: [Date]) async throws {
        let months = Set(dates.map { String(CalendarDay.of($0).prefix(7)) })
        let missing = known.withLock { months.subtracting($0) }
        guard !missing.isEmpty else { return }
        try await client.transaction(logger: logger) { connection in
            try await connection.queryWhenOpen("SELECT pg_advisory_xact_lock(hashtext('pricewatch.partitions'))", logger: logger)
            for month in missing.sorted() {
                let parts = month.split(separator: "-").compactMap { Int($0) }
                let next = parts[1] == 12 ? String(format: "%04d-01", parts[0] + 1) : String(format: "%04d-%02d", parts[0], parts[1] + 1)
                let name = "observations_" + month.replacingOccurrences(of: "-", with: "")
                try await connection.queryWhenOpen(
                    PostgresQuery(unsafeSQL: """
                        CREATE TABLE IF NOT EXISTS pricewatch.\(name) PARTITION OF pricewatch.observations
                        FOR VALUES FROM ('\(month)-01 00:00:00+08') TO ('\(next)-01 00:00:00+08')
                        """), logger: logger)
            }
        }
        known.withLock { $0.formUnion(missing) }
    }
}
