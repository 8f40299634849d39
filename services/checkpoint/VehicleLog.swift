import Foundation
import KangyiAPI
import KangyiPlatform

/// A validated log, normalised, on its way to a group commit.
struct NewVehicleLog: Sendable, Equatable {
    var terminalID: String
    var sequence: Int64
    var plate: String
    var plateColor: String
    var vehicleType: String
    var direction: String
    var originCode: String
    /// From the declared origin, else from the plate's prefix.
    var originProvince: String
    /// Where the plate was issued (a city's code when its letter is known, else the province's).
    var plateRegion: String
    var temperatures: [Int]
    var healthCodes: [String]
    var driverPhone: String
    var destinationDistrict: String
    var observedAt: Date

    var fevers: Int { temperatures.count { $0 >= VehicleLog.feverDecidegrees } }
    var redCodes: Int { healthCodes.count { $0 == "red" } }
    var yellowCodes: Int { healthCodes.count { $0 == "yellow" } }

    /// Every field that makes the log what it is: tells a resend (the same) from a different log under a
    /// used sequence.
    var contentHash: String {
        var hash = ContentHash()
        hash.field(plate)
        hash.field(plateColor)
        hash.field(vehicleType)
        hash.field(direction)
        hash.field(originCode)
        hash.field(temperatures)
        hash.field(healthCodes)
        hash.field(driverPhone)
        hash.field(destinationDistrict)
        hash.field(observedAt)
        return hash.hex()
    }
}

/// A log as stored, with what was computed at ingest.
struct StoredVehicleLog: Sendable, Equatable {
    var log: NewVehicleLog
    var checkpoint: String
    var receivedAt: Date
    var riskArea: Bool
    var watchedPlate: Bool

    var flags: [Kangyi_Checkpoint_V1_Flag] {
        var flags: [Kangyi_Checkpoint_V1_Flag] = []
        if log.fevers > 0 { flags.append(.fever) }
        if log.redCodes > 0 { flags.append(.redCode) }
        if log.yellowCodes > 0 { flags.append(.yellowCode) }
        if riskArea { flags.append(.riskArea) }
        if watchedPlate { flags.append(.watchedPlate) }
        return flags
    }
}

/// Where a stored log is: its key in `checkpoint.vehicle_logs`.
struct VehicleLogKey: Sendable, Equatable, Hashable {
    var checkpoint: String
    var terminalID: String
    var sequence: Int64
    var observedAt: Date
}

/// What became of one log sent for storage.
enum IngestOutcome: Sendable, Equatable {
    case stored(StoredVehicleLog)
    /// Already stored under its (terminal, sequence) with the same content.
    case replayed(VehicleLogKey)
    /// Another log is stored under its (terminal, sequence).
    case conflict
    /// Refused before storage (an unknown or retired terminal, or content the database refuses).
    case rejected([ServiceError.FieldViolation])
}

enum VehicleLog {
    /// 37.3 °C: the fever line of the health commission's checkpoint rules.
    static let feverDecidegrees = 373
    static let maxOccupants = 99
    /// How far ahead of the server's clock a terminal's clock may run.
    static let clockSkew: TimeInterval = 86_400

    static let plateColors = WireNames<Kangyi_Checkpoint_V1_PlateColor>([
        .blue: "blue", .yellow: "yellow", .green: "green", .white: "white", .black: "black",
    ])
    static let vehicleTypes = WireNames<Kangyi_Checkpoint_V1_VehicleType>([
        .car: "car", .bus: "bus", .lorry: "lorry", .van: "van", .motorcycle: "motorcycle", .other: "other",
    ])
    static let directions = WireNames<Kangyi_Checkpoint_V1_Direction>([.inbound: "inbound", .outbound: "outbound"])
    static let healthCodes = WireNames<Kangyi_Checkpoint_V1_HealthCode>([
        .unspecified: "none", .green: "green", .yellow: "yellow", .red: "red",
    ])

    /// A terminal id: letters, digits, '-' and '_', 1-64 characters.
    static func isTerminalID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count)
            && id.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0)
                || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }

    /// The log as stored, or the field violations (named under `prefix`, e.g. "log.") that refuse it.
    static func validate(
        _ wire: Kangyi_Checkpoint_V1_VehicleLog, prefix: String = "log.", reference: ReferenceData, retentionDays: Int,
        now: Date = Date()
    ) -> Result<NewVehicleLog, ServiceError> {
        var violations = FieldViolations()
        func field(_ name: String) -> String { prefix + name }

        if !isTerminalID(wire.terminalID) {
            violations.add(field("terminal_id"), "INVALID_TERMINAL_ID", "required: letters, digits, '-' and '_', 1-64 characters")
        }
        if wire.sequence < 1 { violations.add(field("sequence"), "INVALID_SEQUENCE", "must be 1 or more") }

        let color = plateColors.name(wire.plateColor)
        if color == nil || wire.plateColor == .unspecified {
            violations.add(field("plate_color"), "INVALID_PLATE_COLOR", "required: blue, yellow, green, white or black")
        }
        let plate = Plate.parse(wire.plate, newEnergy: wire.plateColor == .green)
        if plate == nil {
            violations.add(
                field("plate"), "INVALID_PLATE",
                wire.plateColor == .green
                    ? "a new-energy plate: province abbreviation, city letter and 6 letters or digits (e.g. 豫AD12345)"
                    : "province abbreviation, city letter and 5 letters or digits (e.g. 豫A12345)")
        }
        let vehicleType = vehicleTypes.name(wire.vehicleType)
        if vehicleType == nil {
            violations.add(field("vehicle_type"), "INVALID_VEHICLE_TYPE", "required: car, bus, lorry, van, motorcycle or other")
        }
        let direction = directions.name(wire.direction)
        if direction == nil { violations.add(field("direction"), "INVALID_DIRECTION", "required: inbound or outbound") }
        if !wire.originCode.isEmpty && !RegionCode.isValid(wire.originCode) {
            violations.add(field("origin_code"), "INVALID_ORIGIN", "a province or city administrative code, e.g. 420000 or 420100")
        }

        var temperatures: [Int] = []
        var codes: [String] = []
        if !(1...maxOccupants).contains(wire.occupants.count) {
            violations.add(field("occupants"), "INVALID_OCCUPANTS", "1 to \(maxOccupants) people, the driver first")
        }
        for (index, occupant) in wire.occupants.prefix(maxOccupants).enumerated() {
            let t = Int(occupant.temperatureDecidegrees)
            if t != 0 && !(340...430).contains(t) {
                violations.add(
                    field("occupants[\(index)].temperature_decidegrees"), "INVALID_TEMPERATURE",
                    "tenths of a degree Celsius from 340 to 430, or 0 when not measured")
            }
            temperatures.append(t)
            if let code = healthCodes.name(occupant.healthCode) {
                codes.append(code)
            } else {
                violations.add(field("occupants[\(index)].health_code"), "INVALID_HEALTH_CODE", "green, yellow, red or unspecified")
            }
        }

        var phone = ""
        if !wire.driverPhone.trimmingSpaces.isEmpty {
            if let normal = Phone.normalize(wire.driverPhone) {
                phone = normal
            } else {
                violations.add(field("driver_phone"), "INVALID_PHONE", "a mainland mobile number, e.g. 13812345678")
            }
        }
        violations.checkDistrict(wire.destinationDistrict, in: reference, required: false, field: field("destination_district"))

        var observedAt: Date?
        if !wire.hasObservedAt {
            violations.add(field("observed_at"), "MISSING_OBSERVED_AT", "required: when the vehicle was logged")
        } else if let date = violations.checkTimestamp(wire.observedAt, field: field("observed_at")) {
            if date < now.addingTimeInterval(-Double(retentionDays) * 86_400) {
                violations.add(
                    field("observed_at"), "OBSERVED_TOO_LONG_AGO", "older than the \(retentionDays) days logs are kept")
            } else if date > now.addingTimeInterval(clockSkew) {
                violations.add(field("observed_at"), "OBSERVED_IN_FUTURE", "more than a day ahead of the server's clock")
            } else {
                // PostgreSQL keeps microseconds: the answer to a resend then equals the first answer.
                observedAt = Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000)
            }
        }

        guard violations.all.isEmpty, let plate, let color, let vehicleType, let direction, let observedAt else {
            return .failure(.invalidArgument(violations.all))
        }
        let origin = wire.originCode
        // A plate of the city itself (豫A for Zhengzhou) comes from the city, whatever the static table says.
        let region = reference.city.map { plate.text.hasPrefix($0.platePrefix) ? $0.code : plate.region } ?? plate.region
        return .success(NewVehicleLog(
            terminalID: wire.terminalID, sequence: wire.sequence, plate: plate.text, plateColor: color,
            vehicleType: vehicleType, direction: direction, originCode: origin,
            originProvince: origin.isEmpty ? plate.province : RegionCode.province(of: origin), plateRegion: region,
            temperatures: temperatures, healthCodes: codes, driverPhone: phone,
            destinationDistrict: wire.destinationDistrict, observedAt: observedAt))
    }
}
