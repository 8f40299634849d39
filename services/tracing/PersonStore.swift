import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// `tracing.persons` and `tracing.access_log`. Every name, phone, ID number and address is sealed here
/// before it is written and opened here after it is read; phones and ID numbers are found through their
/// blind indexes. Nothing in this file logs a value.
struct PersonStore: Sendable {
    let client: DatabasePool
    let keys: PersonalDataKeys
    let logger: Logger

    static let columns = "p.id, p.key_id, p.name_sealed, p.phone_sealed, p.id_number_sealed, p.address_sealed, p.district, p.created_at"

    // MARK: One person per human

    /// The stored person these details describe, made or completed, inside the caller's transaction.
    /// The same ID number is always the same person; without one, the same phone and the same name (a
    /// household may share a phone). Details the stored person lacks are filled in.
    func resolve(_ details: PersonDetails, on connection: PostgresConnection) async throws -> UUID {
        let phoneIndex = details.phone.map { keys.blindIndex($0, kind: "phone") }
        let idIndex = details.idNumber.map { keys.blindIndex($0, kind: "id") }
        // Two calls listing one person at once wait here for each other, so they find one row (both keys,
        // in one order: one call may know the ID number and the other only the phone).
        for key in [idIndex, phoneIndex].compactMap({ $0 }).sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            try await connection.queryWhenOpen(
                "SELECT pg_advisory_xact_lock(hashtextextended(encode(\(key), 'hex'), 0))", logger: logger)
        }
        var found: PersonRecord?
        if let idIndex {
            found = try await Self.select(
                "WHERE p.id = (SELECT person_id FROM tracing.person_ids WHERE id_index = $1) FOR UPDATE", binds(idIndex),
                keys: keys, on: connection, logger: logger
            ).first
        }
        if found == nil, let phoneIndex {
            // Someone listed by phone before their ID number was known; never one with another ID number.
            let candidates = try await Self.select(
                "WHERE p.phone_index = $1 ORDER BY p.created_at, p.id FOR UPDATE", binds(phoneIndex), keys: keys,
                on: connection, logger: logger)
            found = candidates.first {
                $0.details.name == details.name && ($0.details.idNumber == nil || $0.details.idNumber == details.idNumber)
            }
        }
        guard let existing = found else {
            let id = UUID()
            try await write(PersonRecord(id: id, details: details, keyID: keys.current.id, createdAt: Date()), on: connection, new: true)
            return id
        }
        let completed = existing.details.filling(from: details)
        if completed != existing.details {
            try await write(PersonRecord(id: existing.id, details: completed, keyID: keys.current.id, createdAt: existing.createdAt), on: connection, new: false)
        }
        return existing.id
    }

    /// Seals every field of `person` under the current key (a row is always under one key).
    func write(_ person: PersonRecord, on connection: PostgresConnection, new: Bool) async throws {
        let sealed = seal(person)
        let phoneIndex = person.details.phone.map { keys.blindIndex($0, kind: "phone") }
        let idIndex = person.details.idNumber.map { keys.blindIndex($0, kind: "id") }
        if new {
            try await connection.queryWhenOpen(
                """
                INSERT INTO tracing.persons (id, key_id, name_sealed, phone_sealed, id_number_sealed, address_sealed,
                    district, phone_index, id_index)
                VALUES (\(person.id), \(keys.current.id), \(sealed.name), \(sealed.phone), \(sealed.idNumber),
                    \(sealed.address), \(person.details.district), \(phoneIndex), \(idIndex))
                """, logger: logger)
        } else {
            try await connection.queryWhenOpen(
                """
                UPDATE tracing.persons SET key_id = \(keys.current.id), name_sealed = \(sealed.name),
                    phone_sealed = \(sealed.phone), id_number_sealed = \(sealed.idNumber), address_sealed = \(sealed.address),
                    district = \(person.details.district), phone_index = \(phoneIndex), id_index = \(idIndex), updated_at = now()
                WHERE id = \(person.id)
                """, logger: logger)
        }
        if let idIndex {
            // One person per ID number: the index is claimed once, and only ever by this person.
            let owners = try await connection.queryWhenOpen(
                """
                WITH claimed AS (
                    INSERT INTO tracing.person_ids (id_index, person_id) VALUES (\(idIndex), \(person.id))
                    ON CONFLICT (id_index) DO NOTHING RETURNING person_id)
                SELECT person_id FROM claimed
                UNION ALL SELECT person_id FROM tracing.person_ids WHERE id_index = \(idIndex)
                """, logger: logger)
            for try await owner in owners.decode(UUID.self) where owner != person.id {
                throw PlatformError(description: "ID number index already belongs to another person")
            }
        }
    }

    private func seal(_ person: PersonRecord) -> (name: Data?, phone: Data?, idNumber: Data?, address: Data?) {
        let context = "person/\(person.id.uuidString.lowercased())/"
        return (
            person.details.name.map { keys.seal($0, context: context + "name") },
            person.details.phone.map { keys.seal($0, context: context + "phone") },
            person.details.idNumber.map { keys.seal($0, context: context + "id_number") },
            person.details.address.map { keys.seal($0, context: context + "address") })
    }

    // MARK: Reads

    func fetch(_ id: UUID) async throws -> PersonRecord? {
        try await client.withConnection { connection in
            try await Self.select("WHERE p.id = $1", binds(id), keys: keys, on: connection, logger: logger).first
        }
    }

    func fetch(_ ids: [UUID], on connection: PostgresConnection) async throws -> [UUID: PersonRecord] {
        let found = try await Self.select("WHERE p.id = ANY($1)", binds(ids), keys: keys, on: connection, logger: logger)
        return Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Everyone with this phone (a household may share one), or with this ID number, through the index.
    func find(phone: String?, idNumber: String?) async throws -> [PersonRecord] {
        try await client.withConnection { connection in
            if let idNumber {
                return try await Self.select(
                    "WHERE p.id = (SELECT person_id FROM tracing.person_ids WHERE id_index = $1)",
                    binds(keys.blindIndex(idNumber, kind: "id")), keys: keys, on: connection, logger: logger)
            }
            guard let phone else { return [] }
            return try await Self.select(
                "WHERE p.phone_index = $1 ORDER BY p.created_at, p.id", binds(keys.blindIndex(phone, kind: "phone")),
                keys: keys, on: connection, logger: logger)
        }
    }

    static func select(
        _ clause: String, _ bindings: PostgresBindings, keys: PersonalDataKeys, on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [PersonRecord] {
        let sql = "SELECT \(columns) FROM tracing.persons p " + clause
        var people: [PersonRecord] = []
        for try await row in try await connection.queryWhenOpen(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger) {
            people.append(try open(row, keys: keys))
        }
        return people
    }

    /// A row of `columns`, opened.
    static func open(_ row: PostgresRow, keys: PersonalDataKeys) throws -> PersonRecord {
        let (id, keyID, name, phone, idNumber, address, district, createdAt) = try row.decode(
            (UUID, String, Data?, Data?, Data?, Data?, String?, Date).self)
        let context = "person/\(id.uuidString.lowercased())/"
        func opened(_ sealed: Data?, _ field: String) throws -> String? {
            try sealed.map { try keys.open($0, keyID: keyID, context: context + field) }
        }
        return PersonRecord(
            id: id,
            details: PersonDetails(
                name: try opened(name, "name"), phone: try opened(phone, "phone"),
                idNumber: try opened(idNumber, "id_number"), address: try opened(address, "address"), district: district),
            keyID: keyID, createdAt: createdAt)
    }

    // MARK: The access log

    /// Records that `identity` read these persons unmasked through `method`, for `reason`.
    func recordAccess(to persons: [UUID], method: String, reason: String, by identity: CallerIdentity) async throws {
        guard !persons.isEmpty else { return }
        try await client.query(
            """
            INSERT INTO tracing.access_log (reader, reader_department, person_id, method, reason, request_id)
            SELECT \(identity.caller), \(identity.department), person, \(method), \(reason), \(identity.requestID)
            FROM unnest(\(persons)::uuid[]) AS person
            """, logger: logger)
    }

    struct AccessFilter: Sendable {
        var person: UUID?
        var reader: String?
        var from: Date?
        var before: Date?

        var fingerprint: String {
            [person?.uuidString ?? "", reader ?? "", from.map { "\($0.timeIntervalSince1970)" } ?? "",
             before.map { "\($0.timeIntervalSince1970)" } ?? ""].joined(separator: "|")
        }
    }

    struct AccessEntry: Sendable {
        var seq: Int64
        var reader: String
        var readerDepartment: String
        var person: UUID
        var method: String
        var reason: String
        var requestID: String
        var readAt: Date
    }

    /// Newest first, before `seq`.
    func accessLog(_ filter: AccessFilter, before seq: Int64?, limit: Int) async throws -> [AccessEntry] {
        var sql = SQLConditions()
        if let person = filter.person { sql.add("person_id = \(sql.bind(person))") }
        if let reader = filter.reader { sql.add("reader = \(sql.bind(reader))") }
        if let from = filter.from { sql.add("read_at >= \(sql.bind(from))") }
        if let before = filter.before { sql.add("read_at < \(sql.bind(before))") }
        if let seq { sql.add("seq < \(sql.bind(seq))") }
        let query = """
            SELECT seq, reader, reader_department, person_id, method, reason, request_id, read_at FROM tracing.access_log
            \(sql.whereClause) ORDER BY seq DESC LIMIT \(sql.bind(limit))
            """
        var entries: [AccessEntry] = []
        for try await (seq, reader, department, person, method, reason, requestID, readAt) in try await client.query(
            PostgresQuery(unsafeSQL: query, binds: sql.bindings), logger: logger
        ).decode((Int64, String, String, UUID, String, String, String, Date).self) {
            entries.append(AccessEntry(
                seq: seq, reader: reader, readerDepartment: department, person: person, method: method, reason: reason,
                requestID: requestID, readAt: readAt))
        }
        return entries
    }
}
