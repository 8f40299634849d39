import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiAPI
@testable import KangyiCheckpoint
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import SwiftProtobuf

/// A checkpoint service over a fresh, migrated database of its own (partitions made, the group commit
/// running), served over real HTTP/2, with a terminal `T1` registered at checkpoint ZZ-YAOJIA.
struct CheckpointHarness: Sendable {
    let service: CheckpointService
    let client: DatabasePool
    let grpc: Kangyi_Checkpoint_V1_CheckpointService.Client<HTTP2ClientTransport.Posix>

    static let checkpoint = "ZZ-YAOJIA"
    static let terminal = "T1"

    static func run(_ label: String, retentionDays: Int = 30, _ body: @Sendable (CheckpointHarness) async throws -> Void) async throws {
        let url = try await TestDatabase.migrated(label, Checkpoint.definition.migrations)
        try await withDatabasePool(url, poolSize: 20) { client in
            // Partitions are made by the first batch (the keeper's own loop is not running here).
            let partitions = PartitionKeeper(client: client, retentionDays: retentionDays, logger: TestDatabase.logger)
            let logs = VehicleLogStore(client: client, partitions: partitions, logger: TestDatabase.logger)
            let service = CheckpointService(
                logs: logs, administration: AdministrationStore(client: client, logger: TestDatabase.logger),
                reference: ReferenceDataCache(client: client, logger: TestDatabase.logger), retentionDays: retentionDays)
            let server = GRPCServerService(
                name: "checkpoint", services: [service], host: "127.0.0.1", port: 0, limits: .defaults,
                metrics: RPCMetrics(), logger: TestDatabase.logger, identity: RequestContextInterceptor(key: TestIdentity.key))
            try await withServiceGroup([logs.committer, server]) { _ in
                try await withClient(try await server.listeningAddress()) { grpc in
                    let harness = CheckpointHarness(service: service, client: client, grpc: .init(wrapping: grpc))
                    _ = try await harness.grpc.registerTerminal(
                        .with {
                            $0.terminalID = terminal
                            $0.checkpoint = checkpoint
                        }, metadata: operatorMetadata(for: "RegisterTerminal"))
                    try await body(harness)
                }
            }
        }
    }

    static func method(_ name: String) -> MethodDescriptor {
        MethodDescriptor(fullyQualifiedService: "kangyi.checkpoint.v1.CheckpointService", method: name)
    }

    /// Signed metadata of an operator (every scope, personal data included).
    static func operatorMetadata(for method: String) -> Metadata {
        TestIdentity.metadata(
            CallerIdentity(requestID: RequestID.mint(), caller: "operator-1", scopes: [Scope.personalData]), for: self.method(method))
    }

    /// Signed metadata of a terminal's token (`terminal.<id>`).
    static func terminalMetadata(_ terminal: String = terminal, for method: String) -> Metadata {
        TestIdentity.metadata(CallerIdentity(requestID: RequestID.mint(), caller: "terminal.\(terminal)"), for: self.method(method))
    }

    /// Uploads `logs` on one stream as `terminal`'s token; returns every response.
    /// One stream: a message a log, or `perMessage` logs in each message's `logs`.
    func upload(_ logs: [Kangyi_Checkpoint_V1_VehicleLog], as terminal: String = terminal, perMessage: Int = 1) async throws
        -> [Kangyi_Checkpoint_V1_UploadVehicleLogsResponse]
    {
        try await upload(
            perMessage == 1
                ? logs.map { log in .with { $0.log = log } }
                : stride(from: 0, to: logs.count, by: perMessage).map { start in
                    .with { $0.logs = Array(logs[start..<min(start + perMessage, logs.count)]) }
                },
            as: terminal)
    }

    func upload(_ messages: [Kangyi_Checkpoint_V1_UploadVehicleLogsRequest], as terminal: String = terminal) async throws
        -> [Kangyi_Checkpoint_V1_UploadVehicleLogsResponse]
    {
        try await grpc.uploadVehicleLogs(
            metadata: Self.terminalMetadata(terminal, for: "UploadVehicleLogs"),
            requestProducer: { writer in
                for message in messages { try await writer.write(message) }
            },
            onResponse: { response in
                var all: [Kangyi_Checkpoint_V1_UploadVehicleLogsResponse] = []
                for try await message in response.messages { all.append(message) }
                return all
            })
    }

    func record(_ log: Kangyi_Checkpoint_V1_VehicleLog, as terminal: String = terminal) async throws
        -> Kangyi_Checkpoint_V1_RecordVehicleLogResponse
    {
        try await grpc.recordVehicleLog(.with { $0.log = log }, metadata: Self.terminalMetadata(terminal, for: "RecordVehicleLog"))
    }

    func count(_ sql: String = "SELECT count(*)::int FROM checkpoint.vehicle_logs") async throws -> Int {
        try await client.scalar(PostgresQuery(unsafeSQL: sql)) ?? 0
    }

    func execute(_ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
    }
}

/// A valid log; tests change what they examine.
func vehicleLog(
    _ sequence: Int64, terminal: String = CheckpointHarness.terminal, plate: String = "豫A12345",
    temperatures: [Int32] = [365], codes: [Kangyi_Checkpoint_V1_HealthCode] = [.green], origin: String = "",
    observedAt: Date = Date().addingTimeInterval(-60)
) -> Kangyi_Checkpoint_V1_VehicleLog {
    .with {
        $0.terminalID = terminal
        $0.sequence = sequence
        $0.plate = plate
        $0.plateColor = .blue
        $0.vehicleType = .car
        $0.direction = .inbound
        $0.originCode = origin
        $0.occupants = zip(temperatures, codes).map { t, c in
            .with {
                $0.temperatureDecidegrees = t
                $0.healthCode = c
            }
        }
        $0.observedAt = Google_Protobuf_Timestamp(date: observedAt)
    }
}

extension RPCError {
    var violations: [String] {
        (try? unpackGoogleRPCStatus())?.details.compactMap(\.badRequest).first?.violations.map(\.field) ?? []
    }
}
