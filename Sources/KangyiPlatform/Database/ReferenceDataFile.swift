import Foundation
import Logging
import PostgresNIO

/// `kangyi reference load FILE`: a deployment's own city. The whole file is checked first; then, in one
/// transaction, districts, departments, categories and the city are replaced. A code that the file drops
/// but a stored row still names (any foreign key into `common`, and the known references without one) is
/// refused with the list of them — nothing is dropped silently, and nothing is changed.
public enum ReferenceDataFile {
    /// The file's JSON: ``ReferenceData`` with snake_case keys.
    public static func decode(_ data: Data) throws -> ReferenceData {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(ReferenceData.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw Problems(["\(path(context.codingPath + [key])): required"])
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw Problems(["\(path(context.codingPath)): \(context.debugDescription)"])
        } catch let DecodingError.dataCorrupted(context) {
            throw Problems(["\(path(context.codingPath)): \(context.debugDescription)"])
        }
    }

    public static func encode(_ reference: ReferenceData) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(reference)
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop(while: { $0 == "." }).description
    }

    /// What is wrong with a file, every problem at once.
    public struct Problems: Error, CustomStringConvertible {
        public var problems: [String]
        public init(_ problems: [String]) { self.problems = problems }
        public var description: String { problems.joined(separator: "\n") }
    }

    /// Every problem of `reference`, or none.
    public static func check(_ reference: ReferenceData) -> [String] {
        var problems: [String] = []
        func text(_ value: String, _ field: String, limit: Int = 100) {
            if value.trimmingCharacters(in: .whitespaces).isEmpty { problems.append("\(field): required") }
            if value.unicodeScalars.count > limit { problems.append("\(field): at most \(limit) characters") }
            if value.unicodeScalars.contains(where: { $0.value < 0x20 }) { problems.append("\(field): control characters") }
        }
        func unique(_ values: [String], _ field: String) {
            var seen = Set<String>()
            for value in values where !seen.insert(value).inserted { problems.append("\(field): \(value) appears twice") }
        }
        let adminCode = /^[0-9]{6}$/
        let zoneCode = /^[a-z][a-z0-9_]{1,31}$/
        let lowerCode = /^[a-z][a-z0-9_]*$/

        if let city = reference.city {
            text(city.name, "city.name")
            text(city.nameEn, "city.name_en")
            if city.code.wholeMatch(of: adminCode) == nil { problems.append("city.code: six digits, e.g. 410100") }
            if city.province.wholeMatch(of: /^[0-9]{2}0000$/) == nil { problems.append("city.province: e.g. 410000") }
            else if !city.code.hasPrefix(city.province.prefix(2)) { problems.append("city.code: not in city.province") }
            if city.platePrefix.count != 2 { problems.append("city.plate_prefix: the province abbreviation and city letter, e.g. 豫A") }
        } else {
            problems.append("city: required")
        }
        if reference.districts.isEmpty { problems.append("districts: at least one") }
        for (i, district) in reference.districts.enumerated() {
            let field = "districts[\(i)]"
            switch district.kind {
            case .urban, .outlying:
                if district.code.wholeMatch(of: adminCode) == nil { problems.append("\(field).code: six digits (an administrative code)") }
            case .zone:
                if district.code.wholeMatch(of: zoneCode) == nil {
                    problems.append("\(field).code: a zone's identifier, lower-case letters, digits and _ (2-32)")
                }
            }
            text(district.name, "\(field).name")
            text(district.nameEn, "\(field).name_en")
        }
        unique(reference.districts.map(\.code), "districts.code")
        unique(reference.districts.map(\.name), "districts.name")
        unique(reference.districts.map(\.nameEn), "districts.name_en")
        if reference.departments.isEmpty { problems.append("departments: at least one") }
        for (i, department) in reference.departments.enumerated() {
            if department.code.wholeMatch(of: lowerCode) == nil { problems.append("departments[\(i)].code: lower-case letters, digits and _") }
            text(department.name, "departments[\(i)].name")
            text(department.nameEn, "departments[\(i)].name_en")
        }
        unique(reference.departments.map(\.code), "departments.code")
        unique(reference.departments.map(\.name), "departments.name")
        unique(reference.departments.map(\.nameEn), "departments.name_en")
        if reference.categories.isEmpty { problems.append("categories: at least one") }
        let departments = Set(reference.departments.map(\.code))
        for (i, category) in reference.categories.enumerated() {
            if category.code.wholeMatch(of: lowerCode) == nil { problems.append("categories[\(i)].code: lower-case letters, digits and _") }
            text(category.name, "categories[\(i)].name")
            text(category.nameEn, "categories[\(i)].name_en")
            if !departments.contains(category.defaultDepartment) {
                problems.append("categories[\(i)].default_department: \(category.defaultDepartment) is not among the departments")
            }
        }
        unique(reference.categories.map(\.code), "categories.code")
        unique(reference.categories.map(\.name), "categories.name")
        unique(reference.categories.map(\.nameEn), "categories.name_en")
        return problems
    }

    /// References to `common` codes that no foreign key declares (so PostgreSQL would not stop a delete).
    static let unenforcedReferences: [(table: String, column: String, references: String)] = [
        ("checkpoint.checkpoints", "district", "common.districts"),
        ("checkpoint.vehicle_logs", "destination_district", "common.districts"),
    ]

    /// Checks `reference`, then replaces what `common` holds with it in one transaction. Throws
    /// ``Problems`` for a bad file or for codes still referenced (nothing changed then).
    public static func replace(with reference: ReferenceData, on client: DatabasePool, logger: Logger) async throws {
        let problems = check(reference)
        guard problems.isEmpty else { throw Problems(problems) }
        guard let city = reference.city else { throw Problems(["city: required"]) }
        try await client.transaction(logger: logger) { connection in
            // One load at a time, and no new reference to a code while its use is checked.
            try await connection.queryWhenOpen(
                "LOCK TABLE common.districts, common.departments, common.help_categories, common.city IN EXCLUSIVE MODE",
                logger: logger)
            let dropped: [(table: String, codes: [String])] = [
                ("common.districts", try await codes("common.districts", notIn: reference.districts.map(\.code), on: connection, logger: logger)),
                ("common.departments", try await codes("common.departments", notIn: reference.departments.map(\.code), on: connection, logger: logger)),
                ("common.help_categories", try await codes("common.help_categories", notIn: reference.categories.map(\.code), on: connection, logger: logger)),
            ]
            var referenced: [String] = []
            for (table, codes) in dropped where !codes.isEmpty {
                for (user, column) in try await references(to: table, on: connection, logger: logger) {
                    let used = try await stillUsed(codes, table: user, column: column, on: connection, logger: logger)
                    if !used.isEmpty { referenced.append("\(table): \(used.joined(separator: ", ")) still named by \(user).\(column)") }
                }
            }
            guard referenced.isEmpty else {
                throw Problems(["codes the file drops are still referenced by stored rows (nothing was changed):"] + referenced)
            }
            // Names move to placeholders first so a name may pass from one code to another; categories
            // are replaced before departments are dropped, since they name them.
            try await connection.queryWhenOpen(
                PostgresQuery(unsafeSQL: "DELETE FROM common.help_categories WHERE NOT (code = ANY($1))", binds: binds(reference.categories.map(\.code))),
                logger: logger)
            for table in ["common.districts", "common.departments", "common.help_categories"] {
                try await connection.queryWhenOpen(
                    PostgresQuery(unsafeSQL: "UPDATE \(table) SET name = '#' || code, name_en = '#' || code"), logger: logger)
            }
            try await connection.queryWhenOpen("UPDATE common.help_categories SET sort_order = -sort_order - 1000000", logger: logger)
            try await connection.queryWhenOpen(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO common.districts (code, name, name_en, kind)
                        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                        ON CONFLICT (code) DO UPDATE SET name = excluded.name, name_en = excluded.name_en, kind = excluded.kind
                        """,
                    binds: binds(
                        reference.districts.map(\.code), reference.districts.map(\.name), reference.districts.map(\.nameEn),
                        reference.districts.map(\.kind.rawValue))),
                logger: logger)
            try await connection.queryWhenOpen(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO common.departments (code, name, name_en)
                        SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                        ON CONFLICT (code) DO UPDATE SET name = excluded.name, name_en = excluded.name_en
                        """,
                    binds: binds(reference.departments.map(\.code), reference.departments.map(\.name), reference.departments.map(\.nameEn))),
                logger: logger)
            try await connection.queryWhenOpen(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO common.help_categories (code, name, name_en, default_department, sort_order)
                        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])
                        ON CONFLICT (code) DO UPDATE SET name = excluded.name, name_en = excluded.name_en,
                            default_department = excluded.default_department, sort_order = excluded.sort_order
                        """,
                    binds: binds(
                        reference.categories.map(\.code), reference.categories.map(\.name), reference.categories.map(\.nameEn),
                        reference.categories.map(\.defaultDepartment), Array(1...reference.categories.count))),
                logger: logger)
            try await connection.queryWhenOpen(
                PostgresQuery(unsafeSQL: "DELETE FROM common.departments WHERE NOT (code = ANY($1))", binds: binds(reference.departments.map(\.code))),
                logger: logger)
            try await connection.queryWhenOpen(
                PostgresQuery(unsafeSQL: "DELETE FROM common.districts WHERE NOT (code = ANY($1))", binds: binds(reference.districts.map(\.code))),
                logger: logger)
            try await connection.queryWhenOpen(
                """
                INSERT INTO common.city (name, name_en, code, province, plate_prefix)
                VALUES (\(city.name), \(city.nameEn), \(city.code), \(city.province), \(city.platePrefix))
                ON CONFLICT (only_row) DO UPDATE SET name = excluded.name, name_en = excluded.name_en, code = excluded.code,
                    province = excluded.province, plate_prefix = excluded.plate_prefix
                """, logger: logger)
        }
    }

    private static func codes(_ table: String, notIn kept: [String], on connection: PostgresConnection, logger: Logger)
        async throws -> [String]
    {
        var found: [String] = []
        let rows = try await connection.queryWhenOpen(
            PostgresQuery(unsafeSQL: "SELECT code FROM \(table) WHERE NOT (code = ANY($1)) ORDER BY code", binds: binds(kept)),
            logger: logger)
        for try await code in rows.decode(String.self) { found.append(code) }
        return found
    }

    /// (table, column) of every foreign key into `table`, and the unenforced references that exist here.
    private static func references(to table: String, on connection: PostgresConnection, logger: Logger) async throws
        -> [(String, String)]
    {
        var found: [(String, String)] = []
        let rows = try await connection.queryWhenOpen(
            """
            SELECT c.conrelid::regclass::text, a.attname::text
            FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = \(table)::regclass
              AND c.conrelid::regclass::text NOT LIKE 'common.%'  -- common's own rows are replaced together
            """, logger: logger)
        for try await (user, column) in rows.decode((String, String).self) { found.append((user, column)) }
        for reference in unenforcedReferences where reference.references == table {
            if try await connection.flag("SELECT to_regclass(\(reference.table)) IS NOT NULL", logger: logger) {
                found.append((reference.table, reference.column))
            }
        }
        return found
    }

    private static func stillUsed(_ codes: [String], table: String, column: String, on connection: PostgresConnection, logger: Logger)
        async throws -> [String]
    {
        var used: [String] = []
        // Identifiers come from the catalog (or the list above), never from the file.
        let rows = try await connection.queryWhenOpen(
            PostgresQuery(
                unsafeSQL: "SELECT DISTINCT \(column)::text FROM \(table) WHERE \(column)::text = ANY($1) ORDER BY 1",
                binds: binds(codes)),
            logger: logger)
        for try await code in rows.decode(String.self) { used.append(code) }
        return used
    }
}
