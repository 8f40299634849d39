import Foundation
import KangyiAPI
import KangyiPlatform

/// An observation as checked from the wire, before the store knows its commodity and outlet.
struct NewObservation: Sendable {
    var submitter: String
    var observationID: String
    var commodity: String
    var outlet: String
    var priceFen: Int64
    var quantity: Int64
    var purchaseCostFen: Int64
    var observedAt: Date
    var source: String

    /// What makes a resend the same observation (a changed one under a used id is refused). Fields joined
    /// by "|", as the ledger's first hashes were made.
    var contentHash: String {
        var hash = ContentHash(separator: UInt8(ascii: "|"))
        hash.field(commodity)
        hash.field(outlet)
        hash.field(priceFen)
        hash.field(quantity)
        hash.field(purchaseCostFen)
        hash.field(observedAt)
        hash.field(source)
        return hash.hex()
    }

    /// Checks one wire observation; bad fields are named as the observation's own (`price_fen`), and
    /// ``Refusal/under(_:)`` places them in the request (`observations[3].price_fen`) — only for one
    /// refused: a path built for every observation was a tenth of checking a valid one.
    static func check(_ wire: Kangyi_Pricewatch_V1_PriceObservation, submitter: String) -> Result<NewObservation, Refusal> {
        var violations = FieldViolations()
        violations.checkRequestID(wire.observationID, field: "observation_id")
        if wire.commodity.isEmpty { violations.add("commodity", "MISSING_COMMODITY", "required: a commodity code") }
        if wire.outlet.isEmpty { violations.add("outlet", "MISSING_OUTLET", "required: an outlet code") }
        if !(1...maximumFen).contains(wire.priceFen) {
            violations.add("price_fen", "PRICE_OUT_OF_RANGE", "1 to \(maximumFen) fen")
        }
        if !(1...maximumQuantity).contains(wire.quantity) {
            violations.add("quantity", "QUANTITY_OUT_OF_RANGE", "1 to \(maximumQuantity) of the commodity's base unit")
        }
        if !(0...maximumFen).contains(wire.purchaseCostFen) {
            violations.add("purchase_cost_fen", "COST_OUT_OF_RANGE", "0 (unknown) to \(maximumFen) fen")
        }
        var observedAt: Date?
        if !wire.hasObservedAt {
            violations.add("observed_at", "MISSING_OBSERVED_AT", "required")
        } else if let date = violations.checkTimestamp(wire.observedAt, field: "observed_at") {
            if date > Date().addingTimeInterval(86_400) {
                violations.add("observed_at", "OBSERVED_IN_FUTURE", "at most a day ahead of the server's clock")
            } else if date < earliest {
                violations.add("observed_at", "OBSERVED_TOO_EARLY", "on or after 2000-01-01")
            } else {
                observedAt = date
            }
        }
        let source = PriceWatchNames.sources.name(wire.source)
        if source == nil {
            violations.add("source", "INVALID_SOURCE", "inspector, outlet feed or citizen complaint")
        }
        guard violations.all.isEmpty, let observedAt, let source else { return .failure(Refusal(violations: violations.all)) }
        return .success(NewObservation(
            submitter: submitter, observationID: wire.observationID, commodity: wire.commodity, outlet: wire.outlet,
            priceFen: wire.priceFen, quantity: wire.quantity, purchaseCostFen: wire.purchaseCostFen, observedAt: observedAt,
            source: source))
    }

    struct Refusal: Error {
        var violations: [ServiceError.FieldViolation]

        /// The violations with their fields under `path` (`observations[3]`).
        func under(_ path: String) -> Refusal {
            Refusal(violations: violations.map { violation in
                var violation = violation
                violation.field = path + "." + violation.field
                return violation
            })
        }
    }

    static let maximumFen: Int64 = 10_000_000_000  // 100 million yuan
    static let maximumQuantity: Int64 = 1_000_000_000
    static let earliest = Date(timeIntervalSince1970: 946_656_000)  // 2000-01-01 CST
}

/// Prices normalised to a commodity's unit: `fen × unit_quantity / quantity`, rounded half up, in integers.
enum UnitPrice {
    static func normalise(_ fen: Int64, quantity: Int64, unitQuantity: Int64) -> Int64 {
        let (product, overflow) = fen.multipliedReportingOverflow(by: 2 * unitQuantity)
        guard !overflow else { return Int64((Double(fen) * Double(unitQuantity) / Double(quantity)).rounded()) }
        return (product + quantity) / (2 * quantity)
    }
}

/// An observation as stored.
struct StoredObservation: Sendable {
    var observation: NewObservation
    var district: String
    var unitPriceFen: Int64
    var unitCostFen: Int64
    var receivedAt: Date
}

/// What became of one submitted observation.
enum ObservationOutcome: Sendable {
    case stored(StoredObservation, [AlertRecord])
    case duplicate
    case refused([ServiceError.FieldViolation])
}

/// The stored names of the wire enums.
enum PriceWatchNames {
    static let sources = WireNames<Kangyi_Pricewatch_V1_ObservationSource>([
        .inspector: "inspector", .outletFeed: "outlet_feed", .citizenComplaint: "citizen_complaint",
    ])
    static let classes = WireNames<Kangyi_Pricewatch_V1_CommodityClass>([
        .protectiveSupplies: "protective_supplies", .disinfectant: "disinfectant", .medicine: "medicine",
        .thermometer: "thermometer", .grain: "grain", .oil: "oil", .pork: "pork", .eggs: "eggs", .vegetables: "vegetables",
    ])
    static let units = WireNames<Kangyi_Pricewatch_V1_BaseUnit>([.gram: "gram", .millilitre: "millilitre", .piece: "piece"])
    static let outletKinds = WireNames<Kangyi_Pricewatch_V1_OutletKind>([
        .shop: "shop", .pharmacy: "pharmacy", .supermarket: "supermarket", .wetMarketStall: "wet_market_stall",
    ])
    static let alertKinds = WireNames<Kangyi_Pricewatch_V1_AlertKind>([
        .markupOverOwnHistory: "markup_over_own_history", .markupOverCap: "markup_over_cap",
        .aboveCeiling: "above_ceiling", .riseUnderFreeze: "rise_under_freeze", .riseOverBaseline: "rise_over_baseline",
        .suddenJump: "sudden_jump",
    ])
    static let statuses = WireNames<Kangyi_Pricewatch_V1_AlertStatus>([
        .open: "open", .acknowledged: "acknowledged", .dismissed: "dismissed", .referred: "referred", .closed: "closed",
    ])
    static let outcomes = WireNames<Kangyi_Pricewatch_V1_EnforcementOutcome>([
        .warning: "warning", .fine: "fine", .noViolation: "no_violation",
    ])
    static let controlKinds = WireNames<Kangyi_Pricewatch_V1_ControlKind>([
        .ceiling: "ceiling", .markupCap: "markup_cap", .freeze: "freeze",
    ])
}
