import Foundation
import KangyiAPI
import KangyiPlatform
import PostgresNIO

/// Suggestions: free text, optionally about a category or district, idempotent on (caller, request_id).
/// Rare next to help requests, so written directly rather than group-committed.
extension IntakeStore {
    func submitSuggestion(
        caller: String, requestID: String, category: String?, district: String?, text: String, phone: String?
    ) async throws -> (id: UUID, createdAt: Date, replayed: Bool) {
        var hash = ContentHash()
        for field in [category ?? "", district ?? "", text, phone ?? ""] { hash.field(field) }
        let contentHash = hash.hex()
        let inserted = try await client.query(
            """
            INSERT INTO intake.suggestions (id, caller, request_id, content_hash, category, district, text, phone)
            VALUES (\(UUID()), \(caller), \(requestID), \(contentHash), \(category), \(district), \(text), \(phone))
            ON CONFLICT (caller, request_id) DO NOTHING
            RETURNING id, created_at
            """, logger: logger)
        for try await (id, createdAt) in inserted.decode((UUID, Date).self) { return (id, createdAt, false) }
        let existing = try await client.query(
            """
            SELECT id, created_at, content_hash = \(contentHash) FROM intake.suggestions
            WHERE caller = \(caller) AND request_id = \(requestID)
            """, logger: logger)
        for try await (id, createdAt, same) in existing.decode((UUID, Date, Bool).self) {
            guard same else {
                throw ServiceError.alreadyExists(
                    reason: "REQUEST_ID_REUSED", "request_id was already used for a different suggestion")
            }
            return (id, createdAt, true)
        }
        throw PlatformError(description: "suggestion neither inserted nor found")
    }
}
