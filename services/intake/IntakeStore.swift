import Foundation
import KangyiPlatform
import Logging
import PostgresNIO

/// Help requests and suggestions in schema `intake`. Submissions go through a ``GroupCommitter``: each batch is one
/// transaction that settles idempotency, links repeats, inserts every new row with one INSERT and raises
/// the priority of the requests they repeat.
struct IntakeStore: Sendable {
    // The three repeat settings are baked into `intake.submit_batch` (IntakeMigrations, versions 7 and 10):
    // a change to one needs a new migration that replaces the function.

    /// How far back a request counts as repeated by a new one with the same phone and category.
    static let repeatWindow = "24 hours"
    /// How alike two descriptions must be (pg_trgm's similarity: shared trigrams / all distinct trigrams) to
    /// count as the same request.
    static let textSimilarity = 0.8
    /// The same in hundredths, for the batch function's integer pre-filter (exact where 0.8 in binary is not).
    static var textSimilarityPercent: Int { Int((textSimilarity * 100).rounded()) }
    /// How many of the latest requests in the same category and district a text is compared with.
    static let textCandidates = 50

    /// Batches committed at once, each on its own connection.
    static let lanes = 2
    /// What the committer's connections start with. Every statement of `intake.submit_batch` reads an
    /// index's first entries for a few keys, so no plan depends on the values bound or on statistics:
    /// - generic plans from the first execution: PostgreSQL otherwise re-planned the repeat look-up at
    ///   every batch (0.4 ms of a lone submission);
    /// - no sequential scans: a generic plan made while the table was empty and never analysed (a new
    ///   deployment, each bench run) hash-joined a scan of the whole table, and kept it as the table grew
    ///   (7 ms a batch at 11,000 rows).
    /// Its own pool, because settings apply to every statement of a connection, and the service's reads
    /// want plans for their values. (`intake.submit_batch` also carries the first setting itself since
    /// migration 11, for sessions that are not the committer's.)
    static let committerSessionSettings = [("plan_cache_mode", "force_generic_plan"), ("enable_seqscan", "off")]

    let client: DatabasePool
    let committer: GroupCommitter<NewHelpRequest, SubmitOutcome>
    let logger: Logger

    /// - Parameter committerClient: the group commit's pool (``committerSessionSettings``); `client` when nil.
    ///   and `committerExecutor` where its lanes run (see ``GroupCommitter``).
    init(
        client: DatabasePool, committerClient: DatabasePool? = nil, committerExecutor: (any TaskExecutor)? = nil,
        logger: Logger, maxBatch: Int = 500, lanes: Int = lanes
    ) {
        self.client = client
        self.logger = logger
        let batches = SubmissionBatches(client: committerClient ?? client, logger: logger)
        self.committer = GroupCommitter(maxBatch: maxBatch, lanes: lanes, executor: committerExecutor) {
            try await batches.commit($0)
        }
    }

    func submit(_ request: NewHelpRequest) async throws -> SubmitOutcome {
        try await committer.submit(request)
    }

    func helpRequest(id: UUID) async throws -> StoredHelpRequest? {
        try await one(PostgresQuery(unsafeSQL: "SELECT \(HelpRequestRow.columns) FROM intake.help_requests WHERE id = $1", binds: binds(id)))
    }

    func helpRequest(ticket: String) async throws -> StoredHelpRequest? {
        try await one(PostgresQuery(unsafeSQL: "SELECT \(HelpRequestRow.columns) FROM intake.help_requests WHERE ticket = $1", binds: binds(ticket)))
    }

    private func one(_ query: PostgresQuery) async throws -> StoredHelpRequest? {
        for try await row in try await client.query(query, logger: logger) {
            return try HelpRequestRow.decode(row)
        }
        return nil
    }
}

/// The columns of `intake.help_requests` a ``StoredHelpRequest`` is read from.
enum HelpRequestRow {
    static let names = [
        "id", "ticket", "category", "district", "phone", "contact_name", "address", "description", "latitude",
        "longitude", "special_groups", "urgency", "status", "priority", "green_channel", "repeat_of",
        "repeat_count", "created_at", "updated_at",
    ]
    static let columns = names.joined(separator: ", ")

    /// The same columns read from a row value (`(b.request)`), under their own names.
    static func columns(of record: String) -> String {
        names.map { "\(record).\($0)" }.joined(separator: ", ")
    }

    static func decode(_ row: PostgresRow) throws -> StoredHelpRequest {
        let row = row.makeRandomAccess()
        let latitude = try row["latitude"].decode(Double?.self)
        let longitude = try row["longitude"].decode(Double?.self)
        return StoredHelpRequest(
            id: try row["id"].decode(UUID.self),
            ticket: try row["ticket"].decode(String.self),
            category: try row["category"].decode(String.self),
            district: try row["district"].decode(String.self),
            phone: try row["phone"].decode(String.self),
            contactName: try row["contact_name"].decode(String.self),
            address: try row["address"].decode(String.self),
            description: try row["description"].decode(String.self),
            location: latitude.flatMap { lat in longitude.map { .init(latitude: lat, longitude: $0) } },
            specialGroups: try row["special_groups"].decode([String].self).compactMap(SpecialGroup.init(rawValue:)),
            urgency: Urgency(rawValue: try row["urgency"].decode(String.self)) ?? .routine,
            status: HelpRequestStatus(rawValue: try row["status"].decode(String.self)) ?? .submitted,
            priority: try row["priority"].decode(Int.self),
            greenChannel: try row["green_channel"].decode(Bool.self),
            repeatOf: try row["repeat_of"].decode(UUID?.self),
            repeatCount: try row["repeat_count"].decode(Int.self),
            createdAt: try row["created_at"].decode(Date.self),
            updatedAt: try row["updated_at"].decode(Date.self))
    }
}
