import Foundation
import GRPCCore
import KangyiAPI
@testable import KangyiCheckpoint
import KangyiPlatform
import KangyiTestSupport
import SwiftProtobuf
import Testing

@Suite struct PlateTests {
    @Test(arguments: [
        ("豫A12345", false, "豫A12345"), ("豫a 12345", false, "豫A12345"), ("豫Ａ·１２３４５", false, "豫A12345"),
        ("鄂A-1234学", false, "鄂A1234学"), ("豫AD12345", true, "豫AD12345"), ("  京 n  88888 ", false, "京N88888"),
    ])
    func platesAreNormalised(raw: String, newEnergy: Bool, expected: String) {
        #expect(Plate.parse(raw, newEnergy: newEnergy)?.text == expected)
    }

    @Test(arguments: [
        ("豫A1234", false), ("豫A123456", false), ("豫AD1234", true), ("XA12345", false), ("豫I12345", false),
        ("豫A12O45", false), ("豫A1234５6", false), ("", false), ("豫A\u{0}2345", false), ("台A12345", false),
        // Letters whose upper case is two letters: refused, not a crash.
        ("豫Aß2345", false), ("豫A\u{FB01}234", false), ("ßA12345", false),
    ])
    func nonPlatesAreRefused(raw: String, newEnergy: Bool) {
        #expect(Plate.parse(raw, newEnergy: newEnergy) == nil)
    }

    @Test func aPlateNamesWhereItWasIssued() {
        #expect(Plate.parse("鄂A12345", newEnergy: false)?.region == "420100")
        #expect(Plate.parse("鄂A12345", newEnergy: false)?.province == "420000")
        #expect(Plate.parse("豫U12345", newEnergy: false)?.region == "419001")
        #expect(Plate.parse("沪B12345", newEnergy: false)?.region == "310000")
    }
}

@Suite struct VehicleLogValidationTests {
    static let reference = ReferenceData(
        districts: [.init(code: "410102", name: "中原区", nameEn: "Zhongyuan", kind: .urban)], departments: [], categories: [])

    func violations(_ log: Kangyi_Checkpoint_V1_VehicleLog, now: Date = Date()) -> [String] {
        guard case .failure(let error) = VehicleLog.validate(log, reference: Self.reference, retentionDays: 30, now: now) else {
            return []
        }
        return error.violations.map(\.field)
    }

    @Test func aValidLogIsNormalisedAndCountsItsPeople() throws {
        var log = vehicleLog(7, plate: "豫a 54321", temperatures: [365, 380, 0], codes: [.green, .yellow, .red])
        log.driverPhone = "+86 138-1234-5678"
        log.destinationDistrict = "410102"
        let valid = try VehicleLog.validate(log, reference: Self.reference, retentionDays: 30).get()
        #expect(valid.plate == "豫A54321")
        #expect(valid.driverPhone == "13812345678")
        #expect(valid.fevers == 1 && valid.redCodes == 1 && valid.yellowCodes == 1)
        #expect(valid.originProvince == "410000")  // from the plate, none declared
        #expect(valid.temperatures == [365, 380, 0])
    }

    @Test func theCitysOwnPlatePrefixNamesTheCity() throws {
        var reference = Self.reference
        reference.city = .init(name: "上海市", nameEn: "Shanghai", code: "310100", province: "310000", platePrefix: "沪B")
        let local = try VehicleLog.validate(vehicleLog(1, plate: "沪B12345"), reference: reference, retentionDays: 30).get()
        #expect(local.plateRegion == "310100")
        let other = try VehicleLog.validate(vehicleLog(1, plate: "沪C12345"), reference: reference, retentionDays: 30).get()
        #expect(other.plateRegion == "310000")
    }

    @Test func everyBadFieldIsNamed() {
        var log = vehicleLog(0, terminal: "t 1", plate: "ABC", temperatures: [365, 500], codes: [.green, .red])
        log.plateColor = .unspecified
        log.vehicleType = Kangyi_Checkpoint_V1_VehicleType(rawValue: 77)!
        log.direction = .unspecified
        log.originCode = "999999"
        log.driverPhone = "12345"
        log.destinationDistrict = "000000"
        let fields = violations(log)
        for field in [
            "log.terminal_id", "log.sequence", "log.plate_color", "log.plate", "log.vehicle_type", "log.direction",
            "log.origin_code", "log.occupants[1].temperature_decidegrees", "log.driver_phone", "log.destination_district",
        ] {
            #expect(fields.contains(field), "\(field) not in \(fields)")
        }
    }

    @Test func observedTimesOutsideRetentionOrProtobufAreRefused() {
        let now = Date()
        #expect(violations(vehicleLog(1, observedAt: now.addingTimeInterval(-31 * 86_400)), now: now) == ["log.observed_at"])
        #expect(violations(vehicleLog(1, observedAt: now.addingTimeInterval(2 * 86_400)), now: now) == ["log.observed_at"])
        var log = vehicleLog(1)
        log.observedAt = Google_Protobuf_Timestamp(seconds: 999_999_999_999, nanos: 0)
        #expect(violations(log) == ["log.observed_at"])
        log.clearObservedAt()
        #expect(violations(log) == ["log.observed_at"])
    }

    @Test func occupantsAreBounded() {
        #expect(violations(vehicleLog(1, temperatures: [], codes: [])) == ["log.occupants"])
        let hundred = vehicleLog(1, temperatures: Array(repeating: 365, count: 100), codes: Array(repeating: .green, count: 100))
        #expect(violations(hundred) == ["log.occupants"])
    }
}

@Suite struct FlagTests {
    @Test func everyFlagIsComputedAtIngest() async throws {
        try await CheckpointHarness.run("flags") { h in
            let op = CheckpointHarness.operatorMetadata
            // Whole seconds: the boundaries below are then the same microsecond in every representation.
            let hourAgo = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down) - 3600)
            // Hubei in force from an hour ago; Wuhan only in the past (lifted); Shanghai low (listed, not flagged).
            for (code, level, from, until) in [
                ("420000", Kangyi_Checkpoint_V1_RiskLevel.high, hourAgo, Date?.none),
                ("320100", .medium, hourAgo.addingTimeInterval(-7200), hourAgo),
                ("310000", .low, hourAgo, nil),
            ] {
                _ = try await h.grpc.setRiskArea(
                    .with {
                        $0.riskArea = .with {
                            $0.code = code
                            $0.level = level
                            $0.effective = .with {
                                $0.start = Google_Protobuf_Timestamp(date: from)
                                if let until { $0.end = Google_Protobuf_Timestamp(date: until) }
                            }
                        }
                    }, metadata: op("SetRiskArea"))
            }
            _ = try await h.grpc.watchPlate(.with { $0.plate = "豫b 77777"; $0.reason = "案件协查" }, metadata: op("WatchPlate"))

            func flags(_ log: Kangyi_Checkpoint_V1_VehicleLog) async throws -> Set<Kangyi_Checkpoint_V1_Flag> {
                Set(try await h.record(log).vehicleLog.flags)
            }
            #expect(try await flags(vehicleLog(1)) == [])
            #expect(try await flags(vehicleLog(2, temperatures: [365, 373], codes: [.green, .green])) == [.fever])
            #expect(try await flags(vehicleLog(3, codes: [.red])) == [.redCode])
            #expect(try await flags(vehicleLog(4, codes: [.yellow])) == [.yellowCode])
            // Declared origin: a city of a province in force.
            #expect(try await flags(vehicleLog(5, origin: "420600")) == [.riskArea])
            // No declared origin: the plate's prefix (鄂A → Wuhan → Hubei).
            #expect(try await flags(vehicleLog(6, plate: "鄂A12345")) == [.riskArea])
            // Observed before the area came into force.
            #expect(try await flags(vehicleLog(7, plate: "鄂A12345", observedAt: hourAgo.addingTimeInterval(-60))) == [])
            // Nanjing was in force only before an hour ago; Shanghai is low.
            #expect(try await flags(vehicleLog(8, origin: "320100")) == [])
            #expect(try await flags(vehicleLog(9, origin: "320100", observedAt: hourAgo.addingTimeInterval(-60))) == [.riskArea])
            #expect(try await flags(vehicleLog(10, plate: "沪A12345")) == [])
            #expect(try await flags(vehicleLog(11, plate: "豫B77777", codes: [.red])) == [.redCode, .watchedPlate])
            _ = try await h.grpc.unwatchPlate(.with { $0.plate = "豫B77777" }, metadata: op("UnwatchPlate"))
            #expect(try await flags(vehicleLog(12, plate: "豫B77777")) == [])
            // A period includes its start and excludes its end, to the microsecond.
            #expect(try await flags(vehicleLog(13, plate: "鄂A12345", observedAt: hourAgo)) == [.riskArea])
            #expect(try await flags(vehicleLog(14, origin: "320100", observedAt: hourAgo)) == [])
            #expect(try await flags(vehicleLog(15, origin: "320100", observedAt: hourAgo.addingTimeInterval(-0.000_001))) == [.riskArea])
        }
    }
}
