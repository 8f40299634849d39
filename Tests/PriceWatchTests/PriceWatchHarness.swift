import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import SwiftProtobuf

@testable import KangyiPriceWatch

/// A price-watch service over a fresh, migrated database of its own, its group commit running, with two
/// outlets (a pharmacy in 中原区, a wet-market stall in 金水区). Tests call its handlers directly.
struct PriceWatchHarness: Sendable {
    let client: DatabasePool
    let service: PriceWatchService

    static func run(_ label: String, settings: Settings = Settings(), _ body: @Sendable (PriceWatchHarness) async throws -> Void)
        async throws
    {
        let url = try await TestDatabase.migrated(label, PriceWatch.definition.migrations)
        try await withDatabasePool(url, poolSize: 20) { client in
            let logger = TestDatabase.logger
            let committer = PriceWatch.observationCommitter(client: client, settings: settings, checkRules: true, logger: logger)
            let service = PriceWatchService(
                committer: committer, series: SeriesStore(client: client, logger: logger),
                alerts: AlertStore(client: client, logger: logger), reference: PriceReferenceStore(client: client, logger: logger),
                cities: ReferenceDataCache(client: client, logger: logger))
            try await withServiceGroup([committer]) { _ in
                let harness = PriceWatchHarness(client: client, service: service)
                for (code, kind, district) in [("PH-1", Kangyi_Pricewatch_V1_OutletKind.pharmacy, "410102"), ("WM-1", .wetMarketStall, "410105")] {
                    _ = try await asCaller("regulator-1") {
                        try await service.setOutlet(
                            request: .with {
                                $0.outlet = .with {
                                    $0.code = code
                                    $0.name = "测试\(code)"
                                    $0.kind = kind
                                    $0.district = district
                                    $0.licenceNumber = "91410100MA\(code)"
                                }
                            }, context: .testing)
                    }
                }
                try await body(harness)
            }
        }
    }

    func submit(_ observations: [Kangyi_Pricewatch_V1_PriceObservation], as caller: String = "inspector-1") async throws
        -> Kangyi_Pricewatch_V1_SubmitPriceObservationsResponse
    {
        try await asCaller(caller) {
            try await service.submitPriceObservations(request: .with { $0.observations = observations }, context: .testing)
        }
    }

    func scalar<T: PostgresDecodable & Sendable>(_ sql: String, as: T.Type = Int.self) async throws -> T? {
        try await client.scalar(PostgresQuery(unsafeSQL: sql), as: T.self)
    }
}

func observation(
    _ id: String, commodity: String = "ibuprofen", outlet: String = "PH-1", price: Int64, quantity: Int64 = 20, cost: Int64 = 0,
    at: Date = Date().addingTimeInterval(-60), source: Kangyi_Pricewatch_V1_ObservationSource = .inspector
) -> Kangyi_Pricewatch_V1_PriceObservation {
    .with {
        $0.observationID = id
        $0.commodity = commodity
        $0.outlet = outlet
        $0.priceFen = price
        $0.quantity = quantity
        $0.purchaseCostFen = cost
        $0.observedAt = Google_Protobuf_Timestamp(date: at)
        $0.source = source
    }
}

/// Runs `body` as the named caller.
func asCaller<T: Sendable>(_ caller: String, _ body: () async throws -> T) async throws -> T {
    try await CallerIdentity.$current.withValue(
        CallerIdentity(requestID: RequestID.mint(), caller: caller, department: "market_supervision"), operation: body)
}

/// The ServiceError a direct call threw.
func refusal<T>(_ body: () async throws -> T) async throws -> ServiceError {
    do {
        _ = try await body()
    } catch let error as ServiceError {
        return error
    }
    throw ServiceError(code: .unknown, reason: "SUCCEEDED", message: "the call succeeded")
}

/// 10:00 China Standard Time, `days` days ago.
func day(_ days: Int, hour: Double = 10) -> Date {
    CalendarDay.start(of: CalendarDay.of(Date().addingTimeInterval(-Double(days) * 86_400)))!.addingTimeInterval(hour * 3600)
}
