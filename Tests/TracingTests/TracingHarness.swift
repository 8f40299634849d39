import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import ServiceLifecycle
import SwiftProtobuf

@testable import KangyiTracing

/// A tracing service over a fresh, migrated database of its own, with fresh personal-data keys; tests
/// call its handlers directly as an investigator (``asInvestigator``) and read the tables with SQL.
struct TracingHarness: Sendable {
    let client: DatabasePool
    let keys: PersonalDataKeys
    let tasks: TaskStore
    let service: TracingService

    static func run(
        _ label: String, keys: PersonalDataKeys = .random(), rules: Settings.TracingRules = .defaults,
        extraMigrations: [Migration] = [], _ body: @Sendable (TracingHarness) async throws -> Void
    ) async throws {
        let url = try await TestDatabase.migrated(label, extraMigrations + Tracing.definition.migrations)
        try await withDatabasePool(url, poolSize: 20) { client in
            try await body(harness(client: client, keys: keys, rules: rules))
        }
    }

    static func harness(client: DatabasePool, keys: PersonalDataKeys, rules: Settings.TracingRules = .defaults) -> TracingHarness {
        let logger = TestDatabase.logger
        let tasks = TaskStore(
            client: client, persons: PersonStore(client: client, keys: keys, logger: logger), rules: rules, logger: logger)
        return TracingHarness(
            client: client, keys: keys, tasks: tasks,
            service: TracingService(tasks: tasks, reference: ReferenceDataCache(client: client, logger: logger)))
    }

    /// A case around a new index person; returns its id.
    func newCase(district: String = "410102") async throws -> String {
        try await asInvestigator("investigator-0") {
            try await service.createCase(
                request: .with {
                    $0.requestID = "case-\(RequestID.mint())"
                    $0.indexPerson = .with {
                        $0.name = "病例\(Int.random(in: 0..<1_000_000))"
                        $0.phone = randomPhone()
                        $0.district = district
                    }
                    $0.classification = .confirmed
                    $0.onsetDate = CalendarDay.of(Date().addingTimeInterval(-2 * 86_400))
                    $0.source = "hospital report"
                }, context: .testing
            ).case.id
        }
    }

    /// Lists `contacts` on `caseID`; returns their task ids in order.
    func add(_ contacts: [Kangyi_Tracing_V1_Contact], to caseID: String) async throws -> [String] {
        try await asInvestigator("investigator-0") {
            try await service.addContacts(
                request: .with {
                    $0.caseID = caseID
                    $0.contacts = contacts
                }, context: .testing
            ).contacts.map(\.taskID)
        }
    }

    func scalar<T: PostgresDecodable & Sendable>(_ sql: String, as: T.Type = Int.self) async throws -> T? {
        try await client.scalar(PostgresQuery(unsafeSQL: sql), as: T.self)
    }

    func execute(_ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
    }
}

/// A contact with a fresh phone, exposed yesterday.
func contact(
    name: String = "接触者", phone: String? = nil, idNumber: String = "", relation: Kangyi_Tracing_V1_Relation = .close,
    exposure: String = CalendarDay.of(Date().addingTimeInterval(-86_400)), district: String = "410102"
) -> Kangyi_Tracing_V1_Contact {
    .with {
        $0.person = .with {
            $0.name = name
            $0.phone = phone ?? randomPhone()
            $0.idNumber = idNumber
            $0.district = district
            $0.address = "中原区建设路\(Int.random(in: 1..<999))号"
        }
        $0.relation = relation
        $0.lastExposureDate = exposure
    }
}

func randomPhone() -> String { "139\(String(format: "%08d", Int.random(in: 0..<100_000_000)))" }

/// A valid resident ID number: `prefix` (17 digits) and its check character.
func residentID(_ prefix: String = "41010219900307" + String(format: "%03d", Int.random(in: 0..<1000))) -> String {
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    let sum = zip(prefix.compactMap(\.wholeNumberValue), weights).reduce(0) { $0 + $1.0 * $1.1 }
    return prefix + String(Array("10X98765432")[sum % 11])
}

/// Runs `body` as the named investigator (with the personal-data scope unless told otherwise).
func asInvestigator<T: Sendable>(
    _ caller: String, scopes: Set<String> = [Scope.personalData], requestID: String = RequestID.mint(),
    _ body: () async throws -> T
) async throws -> T {
    try await CallerIdentity.$current.withValue(
        CallerIdentity(requestID: requestID, caller: caller, department: "health_commission", scopes: scopes), operation: body)
}

func unwrap<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw TestFailure("missing \(what)") }
    return value
}

/// The ServiceError a direct call threw (its code, reason and violated fields), or a test failure.
func refusal<T>(_ body: () async throws -> T) async throws -> ServiceError {
    do {
        _ = try await body()
    } catch let error as ServiceError {
        return error
    }
    throw TestFailure("the call succeeded")
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
