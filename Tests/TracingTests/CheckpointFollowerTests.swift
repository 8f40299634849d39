import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import ServiceLifecycle
import SwiftProtobuf
import Testing

@testable import KangyiCheckpoint
@testable import KangyiTracing

/// Tracing follows a real checkpoint server's flagged-vehicle feed over HTTP/2: a task per driver of a
/// vehicle flagged for fever, a red code or a risk-area origin, exactly once, across restarts.
@Suite struct CheckpointFollowerTests {
    @Test func flaggedDriversBecomeTasksExactlyOnceAcrossRestarts() async throws {
        try await TracingHarness.run("checkpoint_follower", extraMigrations: Checkpoint.definition.migrations) { h in
            let logger = TestDatabase.logger
            let partitions = PartitionKeeper(client: h.client, retentionDays: 30, logger: logger)
            let logs = VehicleLogStore(client: h.client, partitions: partitions, logger: logger)
            let checkpoint = CheckpointService(
                logs: logs, administration: AdministrationStore(client: h.client, logger: logger),
                reference: ReferenceDataCache(client: h.client, logger: logger), retentionDays: 30)
            let server = GRPCServerService(
                name: "checkpoint", services: [checkpoint], host: "127.0.0.1", port: 0, limits: .defaults,
                metrics: RPCMetrics(), logger: logger, identity: RequestContextInterceptor(key: TestIdentity.key))
            try await withServiceGroup([logs.committer, server]) { _ in
                let address = try await server.listeningAddress()
                let operatorIdentity = CallerIdentity(requestID: "t", caller: "operator-1")
                try await CallerIdentity.$current.withValue(operatorIdentity) {
                    _ = try await checkpoint.registerTerminal(
                        request: .with {
                            $0.terminalID = "T1"
                            $0.checkpoint = "ZZ-YAOJIA"
                        }, context: .testing)
                }
                let phone = randomPhone()
                func upload(_ sequence: Int64, temperature: Int32 = 365, code: Kangyi_Checkpoint_V1_HealthCode = .green) async throws {
                    try await CallerIdentity.$current.withValue(CallerIdentity(requestID: "t", caller: "terminal.T1")) {
                        _ = try await checkpoint.recordVehicleLog(
                            request: .with {
                                $0.log = .with {
                                    $0.terminalID = "T1"
                                    $0.sequence = sequence
                                    $0.plate = "豫A1234\(sequence)"
                                    $0.plateColor = .blue
                                    $0.vehicleType = .car
                                    $0.direction = .inbound
                                    $0.occupants = [.with { $0.temperatureDecidegrees = temperature; $0.healthCode = code }]
                                    $0.driverPhone = phone
                                    $0.observedAt = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(-60))
                                }
                            }, context: .testing)
                    }
                }
                try await upload(1, temperature: 385)  // fever: traced
                try await upload(2)  // nothing
                try await upload(3, code: .red)  // red code: traced
                try await upload(4, code: .yellow)  // yellow alone: not traced

                func follow(until count: Int) async throws {
                    let peer = try PeerClient(name: "checkpoint", address: address, key: TestIdentity.key)
                    let follower = CheckpointFeedFollower(
                        store: h.tasks, checkpoint: Kangyi_Checkpoint_V1_CheckpointService.Client(wrapping: peer.grpc),
                        retryDelay: .milliseconds(100), logger: logger)
                    try await withServiceGroup([peer, follower]) { _ in
                        let deadline = ContinuousClock.now + .seconds(20)
                        while try await h.scalar("SELECT count(*)::int FROM tracing.tasks") ?? 0 < count {
                            guard ContinuousClock.now < deadline else { throw TestFailure("the follower made too few tasks") }
                            try await Task.sleep(for: .milliseconds(50))
                        }
                        // Let it read past the rest of the feed too.
                        try await Task.sleep(for: .milliseconds(500))
                    }
                }
                try await follow(until: 2)
                #expect(try await h.scalar("SELECT count(*)::int FROM tracing.tasks") == 2)
                let sequences = try await h.scalar(
                    "SELECT string_agg(terminal_sequence::text, ',' ORDER BY terminal_sequence) FROM tracing.tasks", as: String.self)
                #expect(sequences == "1,3")
                // A restart resumes after the stored cursor; another flagged vehicle arrives meanwhile.
                try await upload(5, temperature: 392)
                try await follow(until: 3)
                // Even with the cursor lost, reading the feed again opens no task twice.
                try await h.execute("DELETE FROM tracing.checkpoint_feed")
                try await follow(until: 3)
                #expect(try await h.scalar("SELECT count(*)::int FROM tracing.tasks") == 3)
                #expect(try await h.scalar("SELECT count(DISTINCT (terminal_id, terminal_sequence))::int FROM tracing.tasks") == 3)

                // The driver is one person, found by phone through the blind index, the phone sealed.
                let found = try await asInvestigator("investigator-1") {
                    try await h.service.findPerson(request: .with { $0.phone = phone; $0.reason = "flagged driver" }, context: .testing)
                }
                #expect(found.persons.count == 1 && found.persons[0].phone == phone)
                let task = try await asInvestigator("investigator-1") {
                    try await h.service.listTasks(request: .init(), context: .testing)
                }.tasks.first { $0.checkpoint.sequence == 1 }
                #expect(task?.source == .checkpoint && task?.checkpoint.flags == ["fever"] && task?.checkpoint.checkpoint == "ZZ-YAOJIA")
                // No destination given: traced by the checkpoint's district.
                #expect(task?.district == "410122")
                #expect(try await h.scalar("SELECT count(*)::int FROM tracing.persons WHERE phone_sealed::text LIKE '%' || '\(phone)' || '%'") == 0)
            }
        }
    }
}
