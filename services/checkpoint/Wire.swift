import Foundation
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// The checkpoint domain in its wire shapes.

extension StoredVehicleLog {
    /// The driver's phone is masked unless the caller holds the personal-data scope.
    func wire(for identity: CallerIdentity) -> Kangyi_Checkpoint_V1_StoredVehicleLog {
        .with {
            $0.log = .with {
                $0.terminalID = log.terminalID
                $0.sequence = log.sequence
                $0.plate = log.plate
                $0.plateColor = VehicleLog.plateColors.wire(log.plateColor) ?? .unspecified
                $0.vehicleType = VehicleLog.vehicleTypes.wire(log.vehicleType) ?? .unspecified
                $0.direction = VehicleLog.directions.wire(log.direction) ?? .unspecified
                $0.originCode = log.originCode
                $0.occupants = zip(log.temperatures, log.healthCodes).map { temperature, code in
                    .with {
                        $0.temperatureDecidegrees = Int32(temperature)
                        $0.healthCode = VehicleLog.healthCodes.wire(code) ?? .unspecified
                    }
                }
                $0.driverPhone = log.driverPhone.isEmpty || identity.has(scope: Scope.personalData)
                    ? log.driverPhone : Phone.mask(log.driverPhone)
                $0.destinationDistrict = log.destinationDistrict
                $0.observedAt = Google_Protobuf_Timestamp(date: log.observedAt)
            }
            $0.checkpoint = checkpoint
            $0.receivedAt = Google_Protobuf_Timestamp(date: receivedAt)
            $0.flags = flags
            $0.originProvince = log.originProvince
        }
    }
}

extension ServiceError.FieldViolation {
    var wire: Kangyi_Checkpoint_V1_FieldViolation {
        .with {
            $0.field = field
            $0.reason = reason
            $0.description_p = description
        }
    }
}

extension AdministrationStore.CheckpointRecord {
    var wire: Kangyi_Checkpoint_V1_Checkpoint {
        .with {
            $0.code = code
            $0.name = name
            $0.district = district
            $0.road = road
            if let latitude, let longitude {
                $0.location = .with {
                    $0.latitude = latitude
                    $0.longitude = longitude
                }
            }
        }
    }
}

extension AdministrationStore.TerminalRecord {
    var wire: Kangyi_Checkpoint_V1_Terminal {
        .with {
            $0.terminalID = terminalID
            $0.checkpoint = checkpoint
            $0.label = label
            $0.registeredAt = Google_Protobuf_Timestamp(date: registeredAt)
            if let retiredAt { $0.retiredAt = Google_Protobuf_Timestamp(date: retiredAt) }
        }
    }
}

extension AdministrationStore.RiskAreaRecord {
    static let levels = WireNames<Kangyi_Checkpoint_V1_RiskLevel>([.low: "low", .medium: "medium", .high: "high"])

    var wire: Kangyi_Checkpoint_V1_RiskArea {
        .with {
            $0.code = code
            $0.level = Self.levels.wire(level) ?? .unspecified
            $0.effective = .with {
                $0.start = Google_Protobuf_Timestamp(date: effectiveFrom)
                if let effectiveUntil { $0.end = Google_Protobuf_Timestamp(date: effectiveUntil) }
            }
            $0.note = note
        }
    }
}

extension AdministrationStore.WatchedPlateRecord {
    var wire: Kangyi_Checkpoint_V1_WatchedPlate {
        .with {
            $0.plate = plate
            $0.reason = reason
            $0.watchedBy = watchedBy
            $0.watchedAt = Google_Protobuf_Timestamp(date: watchedAt)
        }
    }
}

extension CheckpointStatisticsRow {
    var wire: Kangyi_Checkpoint_V1_CheckpointStatistics {
        .with {
            $0.checkpoint = checkpoint
            $0.bucketStart = Google_Protobuf_Timestamp(date: bucketStart)
            $0.originProvince = originProvince
            $0.vehicles = vehicles
            $0.people = people
            $0.fevers = fevers
            $0.redCodes = redCodes
            $0.yellowCodes = yellowCodes
            $0.flaggedVehicles = flaggedVehicles
        }
    }
}
