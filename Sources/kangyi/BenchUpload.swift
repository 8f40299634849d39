import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiAPI
import SwiftProtobuf
import Synchronization

/// `kangyi bench upload`: terminals streaming vehicle logs as fast as flow control lets them, for
/// `make bench`. Each terminal (registered first, at the target) holds one UploadVehicleLogs stream; the
/// rate is logs acknowledged (acked_through) per second over the measured window, after a 2 s warm-up.
struct BenchUpload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload", abstract: "Checkpoint terminals uploading vehicle logs as fast as they can.")

    @Option(help: "host:port of the checkpoint service, or of the gateway with --token.") var target: String
    @Option(help: "Terminals uploading at once, one stream each.") var terminals = 4
    @Option(help: "Seconds of measured load (after a 2 s warm-up).") var seconds = 10
    @Option(help: "Logs in each message (a terminal sending its backlog; 1: a message a log).") var batch = 64
    @Option(help: "A bearer token that may register terminals and upload for them (for the gateway).") var token: String?
    @Option(help: "Write the figures as JSON here.") var json: String?

    func run() async throws {
        let transport = try benchTransport(target)
        let metadata: Metadata = token.map { ["authorization": "Bearer \($0)"] } ?? [:]
        let run = RunID.next()
        let acked = Acknowledged(count: terminals)
        let start = ContinuousClock.now
        let measuredFrom = start + .seconds(2)
        let end = measuredFrom + .seconds(seconds)
        var atWindowStart: Int64 = 0
        var errors: [String] = []
        try await withGRPCClient(transport: transport) { client in
            let checkpoint = Kangyi_Checkpoint_V1_CheckpointService.Client(wrapping: client)
            for index in 0..<terminals {
                _ = try await checkpoint.registerTerminal(
                    .with {
                        $0.terminalID = "bench-\(run)-\(index)"
                        $0.checkpoint = "ZZ-YAOJIA"
                    }, metadata: metadata)
            }
            errors = await withTaskGroup(of: String?.self) { group in
                for index in 0..<terminals {
                    group.addTask {
                        do {
                            try await Self.upload(
                                checkpoint, terminal: "bench-\(run)-\(index)", batch: batch, metadata: metadata, until: end
                            ) { through in acked.set(index, through) }
                            return nil
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                group.addTask {
                    try? await Task.sleep(until: measuredFrom)
                    return "start:\(acked.total)"
                }
                var errors: [String] = []
                for await result in group {
                    guard let result else { continue }
                    if result.hasPrefix("start:") { atWindowStart = Int64(result.dropFirst(6)) ?? 0 } else { errors.append(result) }
                }
                return errors
            }
        }
        let total = acked.total
        let report: [String: Any] = [
            "run": run, "terminals": terminals, "batch": batch, "seconds": seconds, "acked_total": total,
            "acked_in_window": total - atWindowStart, "rate_per_s": Double(total - atWindowStart) / Double(seconds),
            "errors": errors,
            // What the servers' CPU counters cover (scripts/bench/proc.py annotate divides by it): every row.
            "calls": total,
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        if let json { try data.write(to: URL(fileURLWithPath: json)) }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    /// One terminal's stream: new logs until `end`, then the end of the stream and its last acknowledgement.
    static func upload(
        _ checkpoint: Kangyi_Checkpoint_V1_CheckpointService.Client<HTTP2ClientTransport.Posix>, terminal: String,
        batch: Int, metadata: Metadata, until end: ContinuousClock.Instant, acked: @escaping @Sendable (Int64) -> Void
    ) async throws {
        try await checkpoint.uploadVehicleLogs(
            metadata: metadata,
            requestProducer: { writer in
                var sequence: Int64 = 0
                while ContinuousClock.now < end {
                    let first = sequence + 1
                    sequence += Int64(batch)
                    try await writer.write(.with { $0.logs = (first...sequence).map { log(terminal: terminal, sequence: $0) } })
                }
            },
            onResponse: { response in
                for try await message in response.messages { acked(message.ackedThrough) }
            })
    }

    /// A log like a busy exit's: a Henan or Hubei plate, two people, one in fifty with a fever.
    static func log(terminal: String, sequence: Int64) -> Kangyi_Checkpoint_V1_VehicleLog {
        .with {
            $0.terminalID = terminal
            $0.sequence = sequence
            let digits = String(sequence % 100_000)
            $0.plate = (sequence % 7 == 0 ? "鄂A" : "豫A") + String(repeating: "0", count: 5 - digits.count) + digits
            $0.plateColor = .blue
            $0.vehicleType = .car
            $0.direction = .inbound
            $0.occupants = [
                .with { $0.temperatureDecidegrees = sequence % 50 == 0 ? 378 : 365; $0.healthCode = .green },
                .with { $0.temperatureDecidegrees = 366; $0.healthCode = .green },
            ]
            $0.destinationDistrict = "410102"
            $0.observedAt = Google_Protobuf_Timestamp(date: Date())
        }
    }
}

/// Each terminal's latest acked_through.
final class Acknowledged: Sendable {
    private let values: Mutex<[Int64]>

    init(count: Int) { values = Mutex([Int64](repeating: 0, count: count)) }

    func set(_ index: Int, _ value: Int64) { values.withLock { $0[index] = value } }

    var total: Int64 { values.withLock { $0.reduce(0, +) } }
}
