import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Histogram
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf
import Synchronization

/// `kangyi bench prices`: price-watch load for `make bench`. `ingest`: feeds submitting batches of
/// observations as fast as their answers come back (rate: observations stored per second over the
/// measured window, after a 2 s warm-up). `series`: one analyst asking for a series, one call at a time
/// (p50, p99 of the answers). Straight to the backend, calls carry an identity signed with
/// `KANGYI_IDENTITY_KEY` (submissions are keyed by their submitter); through the gateway, `--token`.
struct BenchPrices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prices", abstract: "Price observations in, or series out, for make bench.")

    @Argument(help: "ingest or series.") var mode: String
    @Option(help: "host:port of the price-watch service, or of the gateway with --token.") var target: String
    @Option(help: "ingest: feeds submitting at once.") var feeds = 4
    @Option(help: "ingest: observations per SubmitPriceObservations call.") var batch = 500
    @Option(help: "ingest: the outlets to report for (comma-separated, they must exist).") var outlets = "BENCH-1"
    @Option(help: "series: calls, one at a time.") var calls = 200
    @Option(help: "series: the district (empty: the whole city).") var district = "410102"
    @Option(help: "series: days of history per call, in month buckets.") var days = 365
    @Option(help: "Seconds of measured load (ingest, after a 2 s warm-up).") var seconds = 10
    @Option(help: "A bearer token (for the gateway).") var token: String?
    @Option(help: "Write the figures as JSON here.") var json: String?

    func run() async throws {
        let transport = try benchTransport(target)
        let key = ProcessInfo.processInfo.environment["KANGYI_IDENTITY_KEY"].flatMap(IdentityKey.init(base64:))
        let data = try await withGRPCClient(transport: transport) { client in
            let service = Kangyi_Pricewatch_V1_PriceWatchService.Client(wrapping: client)
            let report: [String: Any]
            switch mode {
            case "ingest": report = try await ingest(service, key: key)
            case "series": report = try await series(service, key: key)
            default: throw ValidationError("mode is ingest or series")
            }
            return try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        }
        if let json { try data.write(to: URL(fileURLWithPath: json)) }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    /// The call's metadata: the token, or an identity signed for `method`.
    func metadata(_ method: String, caller: String, key: IdentityKey?) -> Metadata {
        if let token { return ["authorization": "Bearer \(token)"] }
        var metadata = Metadata()
        if let key {
            SignedIdentity.attach(
                CallerIdentity(requestID: RequestID.mint(), caller: caller),
                method: "kangyi.pricewatch.v1.PriceWatchService/\(method)", key: key, to: &metadata)
        }
        return metadata
    }

    private func ingest(_ service: Kangyi_Pricewatch_V1_PriceWatchService.Client<HTTP2ClientTransport.Posix>, key: IdentityKey?)
        async throws -> [String: Any]
    {
        let run = RunID.next()
        let outletCodes = outlets.split(separator: ",").map(String.init)
        let counts = IngestCounts()
        let start = ContinuousClock.now
        let measuredFrom = start + .seconds(2)
        let end = measuredFrom + .seconds(seconds)
        await withTaskGroup(of: Void.self) { group in
            for feed in 0..<feeds {
                group.addTask {
                    var sequence = 0
                    while ContinuousClock.now < end {
                        let observations = (0..<batch).map { _ -> Kangyi_Pricewatch_V1_PriceObservation in
                            sequence += 1
                            return .with {
                                $0.observationID = "bench-\(run)-\(sequence)"
                                $0.commodity = ["pork", "eggs", "rice", "mask_n95"][sequence % 4]
                                $0.outlet = outletCodes[sequence % outletCodes.count]
                                $0.priceFen = Int64(1_000 + sequence % 97)
                                $0.quantity = sequence % 4 == 3 ? 1 : 500
                                $0.purchaseCostFen = sequence % 3 == 0 ? 900 : 0
                                $0.observedAt = Google_Protobuf_Timestamp(date: Date())
                                $0.source = .outletFeed
                            }
                        }
                        do {
                            let response = try await service.submitPriceObservations(
                                .with { $0.observations = observations },
                                metadata: metadata("SubmitPriceObservations", caller: "bench-feed-\(feed)", key: key))
                            counts.stored.add(Int(response.stored), ordering: .relaxed)
                        } catch {
                            counts.failures.withLock { $0.append("\(error)") }
                            return
                        }
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(until: measuredFrom)
                counts.windowStart.store(counts.stored.load(ordering: .relaxed), ordering: .relaxed)
            }
        }
        let total = counts.stored.load(ordering: .relaxed)
        let windowStart = counts.windowStart.load(ordering: .relaxed)
        return [
            "run": run, "feeds": feeds, "batch": batch, "seconds": seconds, "stored_total": total,
            "stored_in_window": total - windowStart, "rate_per_s": Double(total - windowStart) / Double(seconds),
            "errors": counts.failures.withLock { $0 }, "calls": total,
        ]
    }

    private func series(_ service: Kangyi_Pricewatch_V1_PriceWatchService.Client<HTTP2ClientTransport.Posix>, key: IdentityKey?)
        async throws -> [String: Any]
    {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var values: Int64 = 0
        let now = Date()
        for call in 0..<calls {
            let started = ContinuousClock.now
            let response = try await service.getPriceSeries(
                .with {
                    $0.commodity = ["pork", "eggs", "rice", "mask_n95"][call % 4]
                    $0.district = district
                    $0.bucket = .month
                    $0.observed = .with {
                        $0.start = Google_Protobuf_Timestamp(date: now.addingTimeInterval(-Double(days) * 86_400))
                        $0.end = Google_Protobuf_Timestamp(date: now)
                    }
                }, metadata: metadata("GetPriceSeries", caller: "bench-analyst", key: key))
            let elapsed = ContinuousClock.now - started
            histogram.record(UInt64(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
            values = response.points.reduce(0) { $0 + $1.count }
        }
        return [
            "calls": calls, "district": district, "days": days, "values_per_call": values,
            "p50_ms": Double(histogram.valueAtPercentile(50)) / 1000, "p99_ms": Double(histogram.valueAtPercentile(99)) / 1000,
        ]
    }
}

/// What the feeds of `kangyi bench prices ingest` count together.
final class IngestCounts: Sendable {
    let stored = Atomic<Int>(0)
    let windowStart = Atomic<Int>(0)
    let failures = Mutex<[String]>([])
}
