import Foundation
import GRPCCore
import KangyiAPI
@testable import KangyiCheckpoint
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Testing

/// Listings, histories, the flagged feed, statistics and exports over constructed logs.
@Suite struct QueryTests {
    @Test func statisticsAreExactPerCheckpointHourAndOriginProvince() async throws {
        try await CheckpointHarness.run("stats") { h in
            let op = CheckpointHarness.operatorMetadata
            _ = try await h.grpc.registerTerminal(
                .with { $0.terminalID = "T2"; $0.checkpoint = "ZZ-ZHONGMU" }, metadata: op("RegisterTerminal"))
            // Two whole hours of China Standard Time, yesterday: 10:00-11:00 and 11:00-12:00.
            let day = PartitionKeeper.day(of: Date().addingTimeInterval(-86_400))
            let ten = day.addingTimeInterval(10 * 3600)
            var logs: [(String, Kangyi_Checkpoint_V1_VehicleLog)] = []
            // T1, 10:xx: 3 vehicles from Henan (one with a fever among 3 people), 1 from Hubei with a red code.
            logs.append(("T1", vehicleLog(1, temperatures: [365, 374, 366], codes: [.green, .green, .green], observedAt: ten.addingTimeInterval(60))))
            logs.append(("T1", vehicleLog(2, temperatures: [365], codes: [.yellow], observedAt: ten.addingTimeInterval(120))))
            logs.append(("T1", vehicleLog(3, temperatures: [365, 365], codes: [.green, .green], observedAt: ten.addingTimeInterval(3599))))
            logs.append(("T1", vehicleLog(4, plate: "鄂A12345", temperatures: [365], codes: [.red], observedAt: ten.addingTimeInterval(1800))))
            // T1, 11:00 exactly: the next bucket. T2: another checkpoint.
            logs.append(("T1", vehicleLog(5, observedAt: ten.addingTimeInterval(3600))))
            logs.append(("T2", vehicleLog(1, terminal: "T2", observedAt: ten.addingTimeInterval(30))))
            for (terminal, log) in logs {
                _ = try await h.grpc.recordVehicleLog(.with { $0.log = log }, metadata: op("RecordVehicleLog"))
                _ = terminal
            }
            let response = try await h.grpc.getCheckpointStatistics(
                .with {
                    $0.observed = .with {
                        $0.start = Google_Protobuf_Timestamp(date: ten)
                        $0.end = Google_Protobuf_Timestamp(date: ten.addingTimeInterval(7200))
                    }
                    $0.byOriginProvince = true
                }, metadata: op("GetCheckpointStatistics"))
            let rows = response.rows.map {
                "\($0.checkpoint) \(Int($0.bucketStart.date.timeIntervalSince(ten)) / 3600) \($0.originProvince) "
                    + "v\($0.vehicles) p\($0.people) f\($0.fevers) r\($0.redCodes) y\($0.yellowCodes) x\($0.flaggedVehicles)"
            }
            #expect(rows == [
                "ZZ-YAOJIA 0 410000 v3 p6 f1 r0 y1 x2",
                "ZZ-YAOJIA 0 420000 v1 p1 f0 r1 y0 x1",
                "ZZ-YAOJIA 1 410000 v1 p1 f0 r0 y0 x0",
                "ZZ-ZHONGMU 0 410000 v1 p1 f0 r0 y0 x0",
            ])
            let daily = try await h.grpc.getCheckpointStatistics(
                .with {
                    $0.checkpoint = "ZZ-YAOJIA"
                    $0.granularity = .day
                    $0.observed = .with {
                        $0.start = Google_Protobuf_Timestamp(date: day)
                        $0.end = Google_Protobuf_Timestamp(date: day.addingTimeInterval(86_400))
                    }
                }, metadata: op("GetCheckpointStatistics"))
            #expect(daily.rows.map(\.vehicles) == [5])
            #expect(daily.rows.first?.bucketStart.date == day)
            let tooLong = await #expect(throws: RPCError.self) {
                try await h.grpc.getCheckpointStatistics(
                    .with {
                        $0.observed = .with {
                            $0.start = Google_Protobuf_Timestamp(date: day.addingTimeInterval(-200 * 86_400))
                            $0.end = Google_Protobuf_Timestamp(date: day)
                        }
                    }, metadata: op("GetCheckpointStatistics"))
            }
            #expect(tooLong?.violations == ["observed"])
        }
    }

    @Test func listingsPageNewestFirstWithFiltersAndAPlateHasItsHistory() async throws {
        try await CheckpointHarness.run("list") { h in
            let op = CheckpointHarness.operatorMetadata
            let start = Date().addingTimeInterval(-3600)
            let logs = (Int64(1)...30).map { (sequence: Int64) -> Kangyi_Checkpoint_V1_VehicleLog in
                let plate = sequence % 3 == 0 ? "鄂A00001" : "豫A\(30000 + sequence)"
                let code: Kangyi_Checkpoint_V1_HealthCode = sequence % 5 == 0 ? .red : .green
                return vehicleLog(sequence, plate: plate, codes: [code], observedAt: start.addingTimeInterval(Double(sequence) * 10))
            }
            _ = try await h.upload(logs)
            var seen: [Int64] = []
            var token = ""
            repeat {
                let page = try await h.grpc.listVehicleLogs(.with { $0.pageSize = 7; $0.pageToken = token }, metadata: op("ListVehicleLogs"))
                seen += page.vehicleLogs.map(\.log.sequence)
                token = page.nextPageToken
            } while !token.isEmpty
            #expect(seen == Array((1...30).reversed()))
            let red = try await h.grpc.listVehicleLogs(.with { $0.flag = .redCode }, metadata: op("ListVehicleLogs"))
            #expect(red.vehicleLogs.map(\.log.sequence) == [30, 25, 20, 15, 10, 5])
            let hubei = try await h.grpc.listVehicleLogs(.with { $0.originProvince = "420000" }, metadata: op("ListVehicleLogs"))
            #expect(hubei.vehicleLogs.count == 10)
            let history = try await h.grpc.getPlateHistory(.with { $0.plate = "鄂a 00001" }, metadata: op("GetPlateHistory"))
            #expect(history.plate == "鄂A00001")
            #expect(history.passages.map(\.log.sequence) == [30, 27, 24, 21, 18, 15, 12, 9, 6, 3])
            // Unmasked for a caller with the personal-data scope; a bad token or filter is named.
            let badToken = await #expect(throws: RPCError.self) {
                try await h.grpc.listVehicleLogs(.with { $0.pageToken = "nope" }, metadata: op("ListVehicleLogs"))
            }
            #expect(badToken?.violations == ["page_token"])
            let badPlate = await #expect(throws: RPCError.self) {
                try await h.grpc.getPlateHistory(.with { $0.plate = "ABC" }, metadata: op("GetPlateHistory"))
            }
            #expect(badPlate?.violations == ["plate"])
        }
    }

    @Test func theFlaggedFeedResumesFromACursorAndAnExportStreamsEveryLog() async throws {
        try await CheckpointHarness.run("feed") { h in
            let op = CheckpointHarness.operatorMetadata
            _ = try await h.upload((1...1200).map { vehicleLog($0, codes: [$0 % 100 == 0 ? .red : .green]) })
            func watch(from cursor: String, count: Int) async throws -> [Kangyi_Checkpoint_V1_WatchFlaggedVehiclesResponse] {
                try await h.grpc.watchFlaggedVehicles(
                    .with { $0.cursor = cursor }, metadata: op("WatchFlaggedVehicles"),
                    options: { var o = CallOptions.defaults; o.timeout = .seconds(10); return o }()
                ) { response in
                    var got: [Kangyi_Checkpoint_V1_WatchFlaggedVehiclesResponse] = []
                    for try await message in response.messages {
                        got.append(message)
                        if got.count == count { break }
                    }
                    return got
                }
            }
            // Feed order is commit order (batches of two lanes interleave), not sequence order.
            let firstFive = try await watch(from: "", count: 5)
            let rest = try await watch(from: firstFive.last!.cursor, count: 7)
            let sequences = (firstFive + rest).map(\.vehicleLog.log.sequence)
            #expect(sequences.count == 12)
            #expect(Set(sequences) == Set(stride(from: Int64(100), through: 1200, by: 100)))
            #expect(firstFive.allSatisfy { $0.vehicleLog.flags == [.redCode] })

            let now = Date()
            let chunks = try await h.grpc.exportVehicleLogs(
                .with {
                    $0.observed = .with {
                        $0.start = Google_Protobuf_Timestamp(date: now.addingTimeInterval(-86_400))
                        $0.end = Google_Protobuf_Timestamp(date: now.addingTimeInterval(86_400))
                    }
                }, metadata: op("ExportVehicleLogs")
            ) { response in
                var sizes: [Int] = []
                var sequences = Set<Int64>()
                for try await message in response.messages {
                    sizes.append(message.vehicleLogs.count)
                    sequences.formUnion(message.vehicleLogs.map(\.log.sequence))
                }
                return (sizes, sequences.count)
            }
            #expect(chunks.0 == [500, 500, 200])
            #expect(chunks.1 == 1200)
        }
    }
}
