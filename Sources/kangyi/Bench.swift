import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiAPI
import Synchronization

/// `kangyi bench submit`: closed-loop load on SubmitHelpRequest — `concurrency` workers, each sending its
/// next request as soon as the last one is answered, every request with its own request_id and phone (a
/// replayed id would not be a write). Reports the rate, latency percentiles and per-status counts as JSON,
/// so `make bench` can set it beside pgbench. h2load cannot do this: it repeats one body.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators for `make bench`.", subcommands: [Submit.self])

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Closed-loop SubmitHelpRequest load.")

        @Option(help: "host:port of an intake server (or the gateway).") var target: String
        @Option(help: "Requests in flight.") var concurrency = 32
        @Option(help: "Seconds of measured load (after a 2 s warm-up).") var seconds = 10
        @Option(help: "Write the figures as JSON here.") var json: String?
        @Option(help: "A bearer token (for a target that is the gateway).") var token: String?

        func run() async throws {
            let parts = target.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--target must be host:port") }
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: String(parts[0]), port: port), transportSecurity: .plaintext)
            let run = RunID.next()
            let recorder = Recorder()
            let metadata: Metadata = token.map { ["authorization": "Bearer \($0)"] } ?? [:]
            try await withGRPCClient(transport: transport) { client in
                let intake = Kangyi_Intake_V1_IntakeService.Client(wrapping: client)
                let start = ContinuousClock.now
                let warmUpEnds = start + .seconds(2)
                let ends = warmUpEnds + .seconds(seconds)
                await withDiscardingTaskGroup { group in
                    for worker in 0..<concurrency {
                        group.addTask {
                            var sequence = 0
                            while ContinuousClock.now < ends {
                                sequence += 1
                                let request = Self.request(run: run, worker: worker, sequence: sequence)
                                let sent = ContinuousClock.now
                                let code: String
                                do {
                                    _ = try await intake.submitHelpRequest(request, metadata: metadata)
                                    code = "ok"
                                } catch let error as RPCError {
                                    code = "\(error.code)"
                                } catch {
                                    code = "transport"
                                }
                                let done = ContinuousClock.now
                                if sent >= warmUpEnds && done <= ends { recorder.record(done - sent, code: code) }
                            }
                        }
                    }
                }
            }
            let report = recorder.report(seconds: Double(seconds), concurrency: concurrency, run: run)
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            if let json { try data.write(to: URL(fileURLWithPath: json)) }
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }

        static func request(run: String, worker: Int, sequence: Int) -> Kangyi_Intake_V1_SubmitHelpRequestRequest {
            // Distinct phones and texts: every request is a new row, not a repeat or a replay. The third
            // digit differs per run, so a second run in the same database does not repeat the first.
            let third = 3 + (Int(run.suffix(1), radix: 16) ?? 0) % 7
            let number = String(worker * 1_000_000 + sequence % 1_000_000)
            return .with {
                $0.requestID = "bench-\(run)-\(worker)-\(sequence)"
                $0.category = "food_supply"
                $0.district = "420106"
                $0.contact = .with {
                    $0.phone = "1\(third)" + String(repeating: "0", count: 9 - number.count) + number
                }
                // Random text: near-identical texts would (rightly) be linked as repeats of one another.
                $0.description_p = "压测请求 \(UUID().uuidString) \(UInt64.random(in: 0...UInt64.max))：需要生活物资"
                $0.urgency = .urgent
            }
        }
    }
}

/// A short random tag so runs never reuse each other's request ids.
enum RunID {
    static func next() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 16) }
}

/// Latencies (microseconds) and status counts from all workers.
final class Recorder: Sendable {
    private let state = Mutex<(latencies: [Int64], codes: [String: Int])>(([], [:]))

    func record(_ latency: Duration, code: String) {
        let micros = latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000
        state.withLock {
            if code == "ok" { $0.latencies.append(micros) }
            $0.codes[code, default: 0] += 1
        }
    }

    func report(seconds: Double, concurrency: Int, run: String) -> [String: Any] {
        let (latencies, codes) = state.withLock { ($0.latencies.sorted(), $0.codes) }
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            return Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1000
        }
        return [
            "run": run, "concurrency": concurrency, "seconds": seconds,
            "ok": latencies.count, "rate_per_s": Double(latencies.count) / seconds,
            "p50_ms": percentile(0.50), "p99_ms": percentile(0.99), "codes": codes,
        ]
    }
}
