import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// Re-seals personal data under the current key (`kangyi tracing rotate-key`): rows still under a retired
/// key are opened and sealed again, a small batch per transaction, while the service keeps serving —
/// every row names its key, and replicas keep the retired keys until no row needs them.
public struct KeyRotation: Sendable {
    let persons: PersonStore
    let batch: Int

    public init(client: DatabasePool, keys: PersonalDataKeys, batch: Int = 200, logger: Logger) {
        persons = PersonStore(client: client, keys: keys, logger: logger)
        self.batch = batch
    }

    var client: DatabasePool { persons.client }
    var keys: PersonalDataKeys { persons.keys }
    var logger: Logger { persons.logger }

    /// Rows under each key id: what a rotation has left to do.
    public func rowsByKey() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        let rows = try await client.query(
            """
            SELECT key_id, count(*)::int8 FROM (SELECT key_id FROM tracing.persons UNION ALL SELECT key_id FROM tracing.attempts) k
            GROUP BY key_id
            """, logger: logger)
        for try await (key, count) in rows.decode((String, Int64).self) { counts[key] = Int(count) }
        return counts
    }

    /// Re-seals every row not under the current key; returns how many persons and attempts it re-sealed.
    public func run() async throws -> (persons: Int, attempts: Int) {
        var total = (persons: 0, attempts: 0)
        while true {
            let people = try await resealPersons()
            let attempts = try await resealAttempts()
            total.persons += people
            total.attempts += attempts
            if people == 0 && attempts == 0 { return total }
        }
    }

    private func resealPersons() async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            let old = try await PersonStore.select(
                "WHERE p.key_id <> $1 ORDER BY p.id LIMIT $2 FOR UPDATE SKIP LOCKED", binds(keys.current.id, batch), keys: keys,
                on: connection, logger: logger)
            for person in old { try await persons.write(person, on: connection, new: false) }
            return old.count
        }
    }

    private func resealAttempts() async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.queryWhenOpen(
                """
                SELECT id, key_id, quarantine_location_sealed, note_sealed FROM tracing.attempts
                WHERE key_id <> \(keys.current.id) ORDER BY id LIMIT \(batch) FOR UPDATE SKIP LOCKED
                """, logger: logger)
            var old: [(UUID, String, Data?, Data?)] = []
            for try await row in rows.decode((UUID, String, Data?, Data?).self) { old.append(row) }
            for (id, keyID, location, note) in old {
                let context = "attempt/\(id.uuidString.lowercased())/"
                let resealed = try [("quarantine_location", location), ("note", note)].map { field, sealed in
                    try sealed.map { keys.seal(try keys.open($0, keyID: keyID, context: context + field), context: context + field) }
                }
                try await connection.queryWhenOpen(
                    """
                    UPDATE tracing.attempts SET key_id = \(keys.current.id), quarantine_location_sealed = \(resealed[0]),
                        note_sealed = \(resealed[1])
                    WHERE id = \(id)
                    """, logger: logger)
            }
            return old.count
        }
    }
}
