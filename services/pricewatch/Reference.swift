import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// The regulators' reference data: commodities, outlets, price controls and baselines.
struct PriceReferenceStore: Sendable {
    let client: DatabasePool
    let logger: Logger

    struct Commodity: Sendable {
        var code: String
        var name: String
        var nameEn: String
        var commodityClass: String
        var baseUnit: String
        var unitQuantity: Int64
        var epidemicRelated: Bool
    }

    func commodities() async throws -> [Commodity] { try await commodities(code: nil) }

    func commodity(_ code: String) async throws -> Commodity? { try await commodities(code: code).first }

    private func commodities(code: String?) async throws -> [Commodity] {
        var sql = SQLConditions()
        if let code { sql.add("code = \(sql.bind(code))") }
        let query = """
            SELECT code, name, name_en, class, base_unit, unit_quantity, epidemic_related FROM pricewatch.commodities
            \(sql.whereClause) ORDER BY code
            """
        var found: [Commodity] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger)
            .decode((String, String, String, String, String, Int64, Bool).self)
        {
            found.append(Commodity(
                code: row.0, name: row.1, nameEn: row.2, commodityClass: row.3, baseUnit: row.4, unitQuantity: row.5,
                epidemicRelated: row.6))
        }
        return found
    }

    /// Creates or updates a commodity. Its unit cannot change once prices were observed in it.
    func set(_ commodity: Commodity) async throws -> Commodity {
        try await client.transaction(logger: logger) { connection in
            for try await (unit, quantity) in try await connection.queryWhenOpen(
                "SELECT base_unit, unit_quantity FROM pricewatch.commodities WHERE code = \(commodity.code) FOR UPDATE",
                logger: logger
            ).decode((String, Int64).self) where unit != commodity.baseUnit || quantity != commodity.unitQuantity {
                var used = false
                for try await _ in try await connection.queryWhenOpen(
                    "SELECT 1 FROM pricewatch.daily_prices WHERE commodity = \(commodity.code) LIMIT 1", logger: logger
                ) { used = true }
                if used {
                    throw ServiceError.failedPrecondition(
                        reason: "UNIT_IN_USE", "prices were observed in this commodity's unit; create a new commodity instead")
                }
            }
            try await connection.queryWhenOpen(
                """
                INSERT INTO pricewatch.commodities (code, name, name_en, class, base_unit, unit_quantity, epidemic_related)
                VALUES (\(commodity.code), \(commodity.name), \(commodity.nameEn), \(commodity.commodityClass),
                    \(commodity.baseUnit), \(commodity.unitQuantity), \(commodity.epidemicRelated))
                ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, name_en = EXCLUDED.name_en, class = EXCLUDED.class,
                    base_unit = EXCLUDED.base_unit, unit_quantity = EXCLUDED.unit_quantity,
                    epidemic_related = EXCLUDED.epidemic_related, updated_at = now()
                """, logger: logger)
            return commodity
        }
    }

    struct Outlet: Sendable {
        var code: String
        var name: String
        var kind: String
        var district: String
        var licenceNumber: String
    }

    func set(_ outlet: Outlet) async throws -> Outlet {
        try await client.query(
            """
            INSERT INTO pricewatch.outlets (code, name, kind, district, licence_number)
            VALUES (\(outlet.code), \(outlet.name), \(outlet.kind), \(outlet.district), \(outlet.licenceNumber))
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, district = EXCLUDED.district,
                licence_number = EXCLUDED.licence_number, updated_at = now()
            """, logger: logger)
        return outlet
    }

    func outlet(_ code: String) async throws -> Outlet? {
        try await outlets(district: nil, kind: nil, after: nil, limit: 1, code: code).first
    }

    func outlets(district: String?, kind: String?, after: String?, limit: Int, code: String? = nil) async throws -> [Outlet] {
        var sql = SQLConditions()
        if let code { sql.add("code = \(sql.bind(code))") }
        if let district { sql.add("district = \(sql.bind(district))") }
        if let kind { sql.add("kind = \(sql.bind(kind))") }
        if let after { sql.add("code > \(sql.bind(after))") }
        let query = "SELECT code, name, kind, district, licence_number FROM pricewatch.outlets \(sql.whereClause) ORDER BY code LIMIT \(sql.bind(limit))"
        var found: [Outlet] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger)
            .decode((String, String, String, String, String).self)
        {
            found.append(Outlet(code: row.0, name: row.1, kind: row.2, district: row.3, licenceNumber: row.4))
        }
        return found
    }

    // MARK: Price controls

    typealias Control = Rules.Control

    /// Stores a new control once per (setter, request id): a retry gets the control the first made.
    func insert(_ control: Control, requestID: String) async throws -> (Control, replayed: Bool) {
        let inserted = try await client.query(
            """
            INSERT INTO pricewatch.price_controls (id, kind, commodity, class, district, ceiling_fen, max_markup, effective_from,
                effective_until, note, set_by, set_by_department, request_id)
            VALUES (\(control.id), \(control.kind), \(control.commodity), \(control.commodityClass), \(control.district),
                \(control.ceilingFen), \(control.maxMarkupBasisPoints)::numeric / 10000, \(control.effectiveFrom),
                \(control.effectiveUntil), \(control.note), \(control.setBy), \(control.setByDepartment), \(requestID))
            ON CONFLICT (set_by, request_id) DO NOTHING
            RETURNING id
            """, logger: logger)
        var created = false
        for try await _ in inserted { created = true }
        var id = control.id
        if !created {
            for try await earlier in try await client.query(
                "SELECT id FROM pricewatch.price_controls WHERE set_by = \(control.setBy) AND request_id = \(requestID)",
                logger: logger
            ).decode(UUID.self) {
                id = earlier
            }
        }
        guard let stored = try await controls(includeEnded: true, id: id).first else { throw ServiceError.notFound("price control") }
        return (stored, !created)
    }

    /// Ends a control at `end` (not later than it would have ended anyway).
    func end(_ id: UUID, at end: Date) async throws -> Control {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.queryWhenOpen(
                """
                UPDATE pricewatch.price_controls
                SET effective_until = LEAST(COALESCE(effective_until, \(end)), GREATEST(\(end), effective_from + interval '1 second')),
                    ended_at = now()
                WHERE id = \(id) RETURNING id
                """, logger: logger)
            var found = false
            for try await _ in rows { found = true }
            guard found else { throw ServiceError.notFound("price control") }
        }
        return try await controls(includeEnded: true, id: id).first!
    }

    func controls(includeEnded: Bool, id: UUID? = nil) async throws -> [Control] {
        var sql = SQLConditions()
        if let id { sql.add("id = \(sql.bind(id))") }
        if !includeEnded { sql.add("(effective_until IS NULL OR effective_until > now())") }
        let query = """
            SELECT id, kind, commodity, class, district, ceiling_fen, (max_markup * 10000)::int8, effective_from, effective_until,
                note, set_by, set_by_department, ended_at
            FROM pricewatch.price_controls \(sql.whereClause) ORDER BY effective_from DESC, id
            """
        var found: [Control] = []
        for try await row in try await client.query(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger)
            .decode((UUID, String, String?, String?, String?, Int64?, Int64?, Date, Date?, String, String, String, Date?).self)
        {
            found.append(Control(
                id: row.0, kind: row.1, commodity: row.2, commodityClass: row.3, district: row.4, ceilingFen: row.5,
                maxMarkupBasisPoints: row.6, effectiveFrom: row.7, effectiveUntil: row.8, note: row.9, setBy: row.10,
                setByDepartment: row.11, endedAt: row.12))
        }
        return found
    }

    // MARK: Baselines

    struct Baseline: Sendable {
        var commodity: String
        var district: String
        var priceFen: Int64
        var computed: Bool
        var windowStart: Date?
        var windowEnd: Date?
        var observations: Int64
        var setBy: String
        var setByDepartment: String
        var updatedAt: Date
    }

    /// A baseline by hand (`priceFen`), or the median unit price of the district's observations in
    /// [start, end) (whole China Standard Time days, from the day aggregates). No observation there:
    /// FAILED_PRECONDITION.
    func setBaseline(
        commodity: String, district: String, priceFen: Int64?, window: (start: Date, end: Date)?, by actor: CallerIdentity
    ) async throws -> Baseline {
        try await client.transaction(logger: logger) { connection in
            var price = priceFen
            var count: Int64 = 0
            if let window {
                for try await (median, observations) in try await connection.queryWhenOpen(
                    """
                    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p))::int8, count(p)
                    FROM pricewatch.daily_prices d, unnest(d.prices) AS p
                    WHERE d.commodity = \(commodity) AND d.district = \(district)
                      AND d.day >= \(CalendarDay.of(window.start))::date AND d.day <= \(CalendarDay.of(window.end.addingTimeInterval(-0.001)))::date
                    """, logger: logger
                ).decode((Int64?, Int64).self) {
                    price = median
                    count = observations
                }
                guard price != nil, count > 0 else {
                    throw ServiceError.failedPrecondition(
                        reason: "NO_OBSERVATIONS_IN_WINDOW", "no observation of this commodity in this district in the window")
                }
            }
            try await connection.queryWhenOpen(
                """
                INSERT INTO pricewatch.baselines (district, commodity, price_fen, computed, window_start, window_end, observations,
                    set_by, set_by_department)
                VALUES (\(district), \(commodity), \(price), \(window != nil), \(window?.start), \(window?.end), \(count),
                    \(actor.caller), \(actor.department))
                ON CONFLICT (district, commodity) DO UPDATE SET price_fen = EXCLUDED.price_fen, computed = EXCLUDED.computed,
                    window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end, observations = EXCLUDED.observations,
                    set_by = EXCLUDED.set_by, set_by_department = EXCLUDED.set_by_department, updated_at = now()
                """, logger: logger)
            return try await baselines(commodity: commodity, district: district, on: connection).first!
        }
    }

    func baselines(commodity: String?, district: String?) async throws -> [Baseline] {
        try await client.withConnection { try await baselines(commodity: commodity, district: district, on: $0) }
    }

    private func baselines(commodity: String?, district: String?, on connection: PostgresConnection) async throws -> [Baseline] {
        var sql = SQLConditions()
        if let commodity { sql.add("commodity = \(sql.bind(commodity))") }
        if let district { sql.add("district = \(sql.bind(district))") }
        let query = """
            SELECT commodity, district, price_fen, computed, window_start, window_end, observations, set_by, set_by_department,
                updated_at FROM pricewatch.baselines \(sql.whereClause) ORDER BY commodity, district
            """
        var found: [Baseline] = []
        for try await row in try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger)
            .decode((String, String, Int64, Bool, Date?, Date?, Int64, String, String, Date).self)
        {
            found.append(Baseline(
                commodity: row.0, district: row.1, priceFen: row.2, computed: row.3, windowStart: row.4, windowEnd: row.5,
                observations: row.6, setBy: row.7, setByDepartment: row.8, updatedAt: row.9))
        }
        return found
    }
}
