import Foundation
import GRPCCore
import KangyiAPI
@testable import KangyiCheckpoint
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Synchronization
import Testing

/// Exactly once per (terminal, sequence), across streams and reconnects; item-level refusals.
@Suite struct IngestTests {
    @Test func aStreamIsAcknowledgedThroughItsLastLogAndAResendIsNotStoredTwice() async throws {
        try await CheckpointHarness.run("stream") { h in
            let logs = (1...400).map { vehicleLog($0, plate: "豫A\(10000 + $0)") }
            let first = try await h.upload(Array(logs[0..<300]))
            #expect(first.last?.ackedThrough == 300)
            #expect(first.last?.stored == 300)
            // Acknowledged as commits happen, not once per log.
            #expect(first.count < 300)
            #expect(zip(first, first.dropFirst()).allSatisfy { $0.ackedThrough <= $1.ackedThrough })
            // The terminal reconnects and resends from 201 with new logs after.
            let second = try await h.upload(Array(logs[200..<400]))
            #expect(second.last?.ackedThrough == 400)
            #expect(second.last?.stored == 100)
            #expect(second.last?.replayed == 100)
            #expect(try await h.count() == 400)
            #expect(try await h.count("SELECT count(*)::int FROM checkpoint.log_sequences") == 400)
        }
    }

    @Test func aConflictAndAnInvalidLogAreReportedAndTheStreamGoesOn() async throws {
        try await CheckpointHarness.run("items") { h in
            _ = try await h.upload([vehicleLog(1), vehicleLog(2)])
            var bad = vehicleLog(4, plate: "not a plate")
            bad.occupants[0].temperatureDecidegrees = 999
            let responses = try await h.upload([
                vehicleLog(2, plate: "豫A99999"),  // another log under a used sequence
                vehicleLog(3), bad, vehicleLog(5), vehicleLog(5),  // the last: not increasing
            ])
            let items = responses.flatMap(\.items)
            #expect(items.first { $0.sequence == 2 }?.outcome == .conflict)
            let rejected = items.first { $0.sequence == 4 }
            #expect(rejected?.outcome == .rejected)
            #expect(Set(rejected?.violations.map(\.field) ?? []) == ["log.plate", "log.occupants[0].temperature_decidegrees"])
            #expect(items.filter { $0.sequence == 5 }.map(\.violations.first?.reason) == ["SEQUENCE_NOT_INCREASING"])
            #expect(responses.last?.ackedThrough == 5)
            #expect(responses.last?.stored == 2)
            #expect(try await h.count() == 4)
        }
    }

    /// A terminal that sends refused logs and never reads its answers is not read further once
    /// ``Acknowledgements/heldItems`` refusals wait to be told: the server's memory does not grow with its
    /// stream, and no answer outgrows what a client accepts. Telling them, or cancelling, lets it read on.
    @Test func aStreamIsNotReadFurtherWhileItsRefusalsAreUntold() async throws {
        let acks = Acknowledgements()
        let refused = ServiceError.FieldViolation(field: "log.plate", reason: "INVALID_PLATE", description: "a plate")
        for sequence in 1...Int64(Acknowledgements.heldItems) {
            acks.received(sequence)
            acks.settle([(sequence, .rejected([refused]))])
        }
        let readOn = Mutex(false)
        let reader = Task {
            await acks.room()
            readOn.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(!readOn.withLock { $0 }, "the reading went on with \(Acknowledgements.heldItems) refusals untold")
        let told = await acks.next()
        #expect(told?.items.count == Acknowledgements.heldItems)
        #expect(told?.ackedThrough == Int64(Acknowledgements.heldItems))
        await reader.value
        #expect(readOn.withLock { $0 })

        // A waiting reader whose RPC ends (its task cancelled) is let go as well.
        for sequence in Int64(Acknowledgements.heldItems + 1)...Int64(2 * Acknowledgements.heldItems) {
            acks.received(sequence)
            acks.settle([(sequence, .rejected([refused]))])
        }
        let cancelled = Task { await acks.room() }
        try await Task.sleep(for: .milliseconds(100))
        cancelled.cancel()
        await cancelled.value
    }

    @Test func logsInBatchesAreSettledAsIfSentOneByOne() async throws {
        try await CheckpointHarness.run("batches") { h in
            let logs = (1...300).map { vehicleLog($0, plate: "豫A\(30000 + $0)") }
            let first = try await h.upload(Array(logs[0..<200]), perMessage: 64)
            #expect(first.last?.ackedThrough == 200)
            #expect(first.last?.stored == 200)
            var bad = logs[250]
            bad.plate = "not a plate"
            var other = logs[150]
            other.plate = "豫A99999"
            // `log` first, then `logs`: resends, a conflict, new logs, an invalid one, one not increasing.
            let responses = try await h.upload([
                .with { $0.log = logs[149] },
                .with { $0.logs = [other] + Array(logs[151..<250]) + [bad] + Array(logs[251..<300]) + [logs[10]] },
            ])
            let items = responses.flatMap(\.items)
            #expect(items.map(\.sequence).sorted() == [11, 151, 251])
            #expect(items.first { $0.sequence == 151 }?.outcome == .conflict)
            #expect(items.first { $0.sequence == 251 }?.violations.map(\.field) == ["log.plate"])
            #expect(items.first { $0.sequence == 11 }?.violations.first?.reason == "SEQUENCE_NOT_INCREASING")
            #expect(responses.last?.ackedThrough == 300)
            #expect(responses.last?.stored == 99)
            #expect(responses.last?.replayed == 50)
            #expect(try await h.count() == 299)

            // More logs in one message than a stream may have waiting is refused, naming the field.
            let tooMany = (301...Int64(301 + UploadStream.maximumPerMessage)).map { vehicleLog($0) }
            let error = await #expect(throws: RPCError.self) { try await h.upload(tooMany, perMessage: tooMany.count) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("logs") == true)
            #expect(try await h.count() == 299)
            // Every stream gave back its share of the process's window, the refused one too.
            #expect(h.service.uploads.held == 0)
        }
    }

    @Test func unaryRecordIsIdempotentAndRefusesReuse() async throws {
        try await CheckpointHarness.run("unary") { h in
            var log = vehicleLog(1, temperatures: [380], codes: [.green])
            log.driverPhone = "13812345678"
            let first = try await h.record(log)
            #expect(!first.replayed)
            #expect(first.vehicleLog.checkpoint == CheckpointHarness.checkpoint)
            #expect(first.vehicleLog.log.driverPhone == "138****5678")  // a terminal holds no personal-data scope
            let again = try await h.record(log)
            #expect(again.replayed)
            var stored = again.vehicleLog.log, answered = first.vehicleLog.log
            #expect(abs(stored.observedAt.nanos - answered.observedAt.nanos) < 1000)  // PostgreSQL keeps microseconds
            stored.clearObservedAt()
            answered.clearObservedAt()
            #expect(stored == answered)
            #expect(again.vehicleLog.flags == [.fever])
            log.plate = "豫A99999"
            let error = await #expect(throws: RPCError.self) { try await h.record(log) }
            #expect(error?.code == .alreadyExists)
            #expect(try await h.count() == 1)
        }
    }

    @Test func concurrentResendsOfTheSameLogsStoreEachOnce() async throws {
        try await CheckpointHarness.run("race") { h in
            let logs = (1...200).map { vehicleLog($0, plate: "豫A\(20000 + $0)") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for streams in 0..<4 { group.addTask { _ = try await h.upload(logs, perMessage: streams % 2 == 0 ? 1 : 32) } }
                for log in logs.prefix(50) { group.addTask { _ = try await h.record(log) } }
                try await group.waitForAll()
            }
            #expect(try await h.count() == 200)
            #expect(h.service.uploads.held == 0)
        }
    }

    @Test func aTerminalUploadsOnlyAsItselfAndOnlyWhileRegistered() async throws {
        try await CheckpointHarness.run("terminals") { h in
            let op = CheckpointHarness.operatorMetadata
            _ = try await h.grpc.registerTerminal(
                .with { $0.terminalID = "T2"; $0.checkpoint = "ZZ-ZHONGMU" }, metadata: op("RegisterTerminal"))
            // Another terminal's token.
            let denied = await #expect(throws: RPCError.self) { try await h.record(vehicleLog(1), as: "T2") }
            #expect(denied?.code == .permissionDenied)
            let streamDenied = await #expect(throws: RPCError.self) { try await h.upload([vehicleLog(1)], as: "T2") }
            #expect(streamDenied?.code == .permissionDenied)
            // An unknown terminal (an operator may upload for any terminal, but it must exist).
            let unknown = await #expect(throws: RPCError.self) {
                try await h.grpc.recordVehicleLog(.with { $0.log = vehicleLog(1, terminal: "T9") }, metadata: op("RecordVehicleLog"))
            }
            #expect(unknown?.violations == ["log.terminal_id"])
            // Rebinding is refused; registering again the same way is not.
            let taken = await #expect(throws: RPCError.self) {
                try await h.grpc.registerTerminal(.with { $0.terminalID = "T2"; $0.checkpoint = "ZZ-YAOJIA" }, metadata: op("RegisterTerminal"))
            }
            #expect(taken?.code == .alreadyExists)
            _ = try await h.grpc.registerTerminal(.with { $0.terminalID = "T2"; $0.checkpoint = "ZZ-ZHONGMU" }, metadata: op("RegisterTerminal"))
            // Retired: its backlog observed before the retirement is accepted, nothing after.
            let before = Date().addingTimeInterval(-120)
            _ = try await h.grpc.retireTerminal(.with { $0.terminalID = "T2" }, metadata: op("RetireTerminal"))
            #expect(try await h.record(vehicleLog(1, terminal: "T2", observedAt: before), as: "T2").vehicleLog.checkpoint == "ZZ-ZHONGMU")
            let after = try await h.upload([vehicleLog(2, terminal: "T2", observedAt: Date().addingTimeInterval(5))], as: "T2")
            #expect(after.flatMap(\.items).first?.violations.first?.reason == "TERMINAL_RETIRED")
            let listed = try await h.grpc.listTerminals(.with { $0.includeRetired = true }, metadata: op("ListTerminals"))
            #expect(listed.terminals.map(\.terminalID) == ["T1", "T2"])
            #expect(try await h.grpc.listTerminals(.init(), metadata: op("ListTerminals")).terminals.map(\.terminalID) == ["T1"])
        }
    }

    @Test func partitionsAreCreatedAheadAndDroppedAfterRetention() async throws {
        try await CheckpointHarness.run("partitions", retentionDays: 5) { h in
            let keeper = PartitionKeeper(client: h.client, retentionDays: 5, logger: TestDatabase.logger)
            let now = Date()
            let names = "SELECT count(*)::int FROM pg_inherits WHERE inhparent = 'checkpoint.vehicle_logs'::regclass"
            #expect(try await h.count(names) == 0)
            // The first log makes them: today, 5 days back, 3 ahead.
            _ = try await h.record(vehicleLog(1, observedAt: now.addingTimeInterval(-2 * 86_400)))
            #expect(try await h.count(names) == 9)
            _ = try await h.record(vehicleLog(2, observedAt: now.addingTimeInterval(-60)))
            // Two days later: two old days go; two new days come.
            let later = try await keeper.maintain(now: now.addingTimeInterval(2 * 86_400))
            #expect(later.created.count == 2)
            #expect(later.dropped.count == 2)
            #expect(later.dropped.first == PartitionKeeper.name(of: PartitionKeeper.day(of: now.addingTimeInterval(-5 * 86_400))))
            #expect(try await h.count(names) == 9)
            #expect(try await h.count() == 2)
            // Five days later the first log's day goes, with its ledger row.
            let remaining = try await keeper.maintain(now: now.addingTimeInterval(5 * 86_400))
            #expect(remaining.dropped.contains(PartitionKeeper.name(of: PartitionKeeper.day(of: now.addingTimeInterval(-2 * 86_400)))))
            #expect(try await h.count() == 1)
            #expect(try await h.count("SELECT count(*)::int FROM checkpoint.log_sequences") == 1)
        }
    }
}
