import Foundation
import GRPCCore
import KangyiAPI
@testable import KangyiIntake
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import ServiceLifecycle

@testable import KangyiVerification

/// A verification service over a fresh, migrated database of its own, talking over real HTTP/2 to an
/// intake server that tests start (and stop) with ``withIntakeServer(_:)`` on a fixed port, so they can
/// make intake unreachable in the middle of a transition.
struct VerificationHarness: Sendable {
    let client: DatabasePool
    let store: CaseStore
    let service: VerificationService
    let sync: IntakeSync
    let intakeClient: any Kangyi_Intake_V1_IntakeService.ClientProtocol
    let intakeService: IntakeService
    let intakePort: Int
    /// Holds ``intakePort`` while no intake server listens on it.
    let reservation: ReservedPort

    static func run(_ label: String, _ body: @Sendable (VerificationHarness) async throws -> Void) async throws {
        let url = try await TestDatabase.migrated(label, Intake.definition.migrations + Verification.definition.migrations)
        try await withDatabasePool(url, poolSize: 20) { client in
            let logger = TestDatabase.logger
            let intakeStore = IntakeStore(client: client, logger: logger)
            let reference = ReferenceDataCache(client: client, logger: logger)
            let reservation = try ReservedPort()
            let intakePort = reservation.port
            let peer = try PeerClient(name: "intake", address: "127.0.0.1:\(intakePort)", key: TestIdentity.key)
            let intakeClient = Kangyi_Intake_V1_IntakeService.Client(wrapping: peer.grpc)
            let store = CaseStore(client: client, logger: logger)
            let sync = IntakeSync(
                store: store, intake: intakeClient, callTimeout: .seconds(10), retryInterval: .milliseconds(100),
                logger: logger)
            let harness = VerificationHarness(
                client: client, store: store, service: VerificationService(store: store, sync: sync, reference: reference),
                sync: sync, intakeClient: intakeClient,
                intakeService: IntakeService(store: intakeStore, reference: reference), intakePort: intakePort,
                reservation: reservation)
            try await withServiceGroup([intakeStore.committer, peer]) { _ in try await body(harness) }
        }
    }

    /// Runs `body` while a real intake gRPC server listens on ``intakePort``.
    func withIntakeServer<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        let server = GRPCServerService(
            name: "intake", services: [intakeService], host: "127.0.0.1", port: intakePort, limits: .defaults,
            metrics: RPCMetrics(), logger: TestDatabase.logger, identity: RequestContextInterceptor(key: TestIdentity.key))
        return try await withServiceGroup([server]) { _ in
            _ = try await server.listeningAddress()
            return try await body()
        }
    }

    /// Stores a help request in intake (directly) and returns it.
    func submitToIntake(
        category: String = "food_supply", district: String = "410102", urgency: Kangyi_Intake_V1_Urgency = .urgent,
        groups: [Kangyi_Intake_V1_SpecialGroup] = [], phone: String? = nil
    ) async throws -> Kangyi_Intake_V1_HelpRequest {
        let request = Kangyi_Intake_V1_SubmitHelpRequestRequest.with {
            $0.requestID = "req-\(RequestID.mint())"
            $0.category = category
            $0.district = district
            // A distinct phone and text per request, so intake does not link them as repeats.
            $0.contact = .with { $0.phone = phone ?? "139\(String(format: "%08d", Int.random(in: 0..<100_000_000)))" }
            $0.description_p = "需要帮助 \(RequestID.mint())"
            $0.urgency = urgency
            $0.specialGroups = groups
        }
        return try await CallerIdentity.$current.withValue(CallerIdentity(requestID: "t", caller: "citizen-app")) {
            try await intakeService.submitHelpRequest(request: request, context: .testing).helpRequest
        }
    }

    /// A help request in intake and its case in the queue (recorded as the feed follower would).
    func newCase(
        category: String = "food_supply", district: String = "410102", urgency: Kangyi_Intake_V1_Urgency = .urgent,
        groups: [Kangyi_Intake_V1_SpecialGroup] = []
    ) async throws -> UUID {
        let request = try await submitToIntake(category: category, district: district, urgency: urgency, groups: groups)
        let source = try unwrap(CaseSource(request), "case source")
        try await store.record(source, cursor: "")
        return source.id
    }

    /// Intake's public status of a help request, read over its own store.
    func intakeStatus(_ id: UUID) async throws -> HelpRequestStatus? {
        try await intakeService.store.helpRequest(id: id)?.status
    }

    func scalar<T: PostgresDecodable & Sendable>(_ sql: String, as: T.Type = Int.self) async throws -> T? {
        try await client.scalar(PostgresQuery(unsafeSQL: sql), as: T.self)
    }
}

/// Runs `body` as the staff member `caller` (as the gateway would vouch for them).
func asStaff<T: Sendable>(_ caller: String, department: String = "hotline", _ body: () async throws -> T) async throws -> T {
    try await CallerIdentity.$current.withValue(CallerIdentity(requestID: RequestID.mint(), caller: caller, department: department)) {
        try await body()
    }
}

func unwrap<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw PlatformError(description: "missing \(what)") }
    return value
}
