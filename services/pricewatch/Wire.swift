import Foundation
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// The price-watch domain in its wire shapes.

extension AlertRecord {
    var wire: Kangyi_Pricewatch_V1_Alert {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.kind = PriceWatchNames.alertKinds.wire(kind) ?? .unspecified
            $0.status = PriceWatchNames.statuses.wire(status) ?? .unspecified
            $0.commodity = commodity
            $0.outlet = outlet
            $0.district = district
            $0.submitter = submitter
            $0.observationID = observationID
            $0.observedAt = Google_Protobuf_Timestamp(date: observedAt)
            $0.figures = figures
            $0.priceControlID = controlID?.uuidString.lowercased() ?? ""
            $0.caseNumber = caseNumber ?? ""
            $0.outcome = outcome.flatMap(PriceWatchNames.outcomes.wire) ?? .unspecified
            $0.fineFen = fineFen ?? 0
            $0.dismissReason = dismissReason ?? ""
            $0.createTime = Google_Protobuf_Timestamp(date: createdAt)
            $0.updateTime = Google_Protobuf_Timestamp(date: updatedAt)
        }
    }
}

extension AlertEventRecord {
    var wire: Kangyi_Pricewatch_V1_AlertEvent {
        .with {
            $0.action = action
            $0.fromStatus = PriceWatchNames.statuses.wire(fromStatus) ?? .unspecified
            $0.toStatus = PriceWatchNames.statuses.wire(toStatus) ?? .unspecified
            $0.actor = .with {
                $0.caller = actor
                $0.department = actorDepartment
            }
            $0.note = note
            $0.time = Google_Protobuf_Timestamp(date: at)
        }
    }
}

extension StoredObservation {
    var wire: Kangyi_Pricewatch_V1_StoredObservation {
        .with {
            $0.observation = .with {
                $0.observationID = observation.observationID
                $0.commodity = observation.commodity
                $0.outlet = observation.outlet
                $0.priceFen = observation.priceFen
                $0.quantity = observation.quantity
                $0.purchaseCostFen = observation.purchaseCostFen
                $0.observedAt = Google_Protobuf_Timestamp(date: observation.observedAt)
                $0.source = PriceWatchNames.sources.wire(observation.source) ?? .unspecified
            }
            $0.submitter = observation.submitter
            $0.district = district
            $0.unitPriceFen = unitPriceFen
            $0.unitCostFen = unitCostFen
            $0.receivedAt = Google_Protobuf_Timestamp(date: receivedAt)
        }
    }
}

extension SeriesStore.Point {
    var wire: Kangyi_Pricewatch_V1_SeriesPoint {
        .with {
            $0.bucketStart = bucketStart
            $0.count = count
            $0.minFen = min
            $0.p10Fen = p10
            $0.medianFen = median
            $0.p90Fen = p90
            $0.maxFen = max
        }
    }
}

extension SpikeIndicators.Result {
    var wire: Kangyi_Pricewatch_V1_SpikeIndicator {
        .with {
            $0.value = value
            $0.month = month
            $0.monthsOfHistory = Int32(monthsOfHistory)
            $0.band = switch band {
            case .insufficientHistory: .insufficientHistory
            case .normal: .normal
            case .stress: .stress
            case .moderate: .moderate
            case .alert: .alert
            case .crisis: .crisis
            }
        }
    }
}

extension SeriesStore.Indicators {
    var wire: Kangyi_Pricewatch_V1_Indicators {
        .with {
            $0.commodity = commodity
            $0.district = district
            $0.latestMedianFen = latestMedian
            $0.latestDay = latestDay
            $0.baselineFen = baseline ?? 0
            if let changeVsBaseline { $0.changeVsBaseline = changeVsBaseline }
            if let changeVs7Days { $0.changeVs7DaysAgo = changeVs7Days }
            if let changeVs30Days { $0.changeVs30DaysAgo = changeVs30Days }
            $0.alps = alps.wire
            $0.ifpa = ifpa.wire
        }
    }
}

extension PriceReferenceStore.Commodity {
    var wire: Kangyi_Pricewatch_V1_Commodity {
        .with {
            $0.code = code
            $0.name = name
            $0.nameEn = nameEn
            $0.class = PriceWatchNames.classes.wire(commodityClass) ?? .unspecified
            $0.baseUnit = PriceWatchNames.units.wire(baseUnit) ?? .unspecified
            $0.unitQuantity = unitQuantity
            $0.epidemicRelated = epidemicRelated
        }
    }
}

extension PriceReferenceStore.Outlet {
    var wire: Kangyi_Pricewatch_V1_Outlet {
        .with {
            $0.code = code
            $0.name = name
            $0.kind = PriceWatchNames.outletKinds.wire(kind) ?? .unspecified
            $0.district = district
            $0.licenceNumber = licenceNumber
        }
    }
}

extension PriceReferenceStore.Control {
    var wire: Kangyi_Pricewatch_V1_PriceControl {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.kind = PriceWatchNames.controlKinds.wire(kind) ?? .unspecified
            $0.commodity = commodity ?? ""
            $0.class = commodityClass.flatMap(PriceWatchNames.classes.wire) ?? .unspecified
            $0.district = district ?? ""
            $0.ceilingFen = ceilingFen ?? 0
            $0.maxMarkup = maxMarkupBasisPoints.map { Double($0) / 10_000 } ?? 0
            $0.effective = .with {
                $0.start = Google_Protobuf_Timestamp(date: effectiveFrom)
                if let effectiveUntil { $0.end = Google_Protobuf_Timestamp(date: effectiveUntil) }
            }
            $0.note = note
            $0.setBy = .with {
                $0.caller = setBy
                $0.department = setByDepartment
            }
            if let endedAt { $0.endedAt = Google_Protobuf_Timestamp(date: endedAt) }
        }
    }
}

extension PriceReferenceStore.Baseline {
    var wire: Kangyi_Pricewatch_V1_Baseline {
        .with {
            $0.commodity = commodity
            $0.district = district
            $0.priceFen = priceFen
            $0.computed = computed
            if let windowStart, let windowEnd {
                $0.window = .with {
                    $0.start = Google_Protobuf_Timestamp(date: windowStart)
                    $0.end = Google_Protobuf_Timestamp(date: windowEnd)
                }
            }
            $0.observations = observations
            $0.setBy = .with {
                $0.caller = setBy
                $0.department = setByDepartment
            }
            $0.updateTime = Google_Protobuf_Timestamp(date: updatedAt)
        }
    }
}
