import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Histogram
import KangyiAPI
import SwiftProtobuf
import Synchronization

/// `kangyi bench load`: a load generator for what h2load cannot do — a new request id and phone in every
/// SubmitHelpRequest (a repeated body would be a replay, not a write), open-loop runs at a fixed arrival
/// rate with latency measured from each request's intended send time (so queueing in the generator is
/// never hidden), per-status counts, HDR-histogram percentiles, and a progress line. `make bench` now
/// drives these runs with `kangyi-load` (Sources/kangyi-load): the same workload and JSON, in C, at
/// about a twentieth of the CPU a call, since the generator shares the cores it measures. This one stays
/// for ad-hoc runs that want its progress line or a TLS-free Swift client to compare with.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators for `make bench`.", subcommands: [Load.self, BenchUpload.self, BenchPrices.self, BenchBareNoop.self])

    enum Workload: String, ExpressibleByArgument, CaseIterable {
        case submit, noop
    }

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Closed-loop (--concurrency) or open-loop (--rate) load on one RPC.")

        @Option(help: "host:port of the server (a service, or the gateway with --token).") var target: String
        @Option(help: "What to call: \(Workload.allCases.map(\.rawValue).joined(separator: ", ")).") var rpc: Workload = .submit
        @Option(help: "Closed loop: requests in flight, each sent when the last is answered.") var concurrency = 32
        @Option(help: "Open loop instead: requests per second, sent on schedule whatever the answers.") var rate: Double?
        @Option(help: "Seconds of measured load (after a 2 s warm-up).") var seconds = 10
        @Option(help: "Per-request deadline, milliseconds.") var deadlineMs = 5000
        @Option(help: "A bearer token (for the gateway).") var token: String?
        @Option(help: "Write the figures as JSON here.") var json: String?
        @Option(help: "Which block of phone numbers submissions use (0-699): runs in one database need different blocks, or their submissions repeat each other's. From the run id when omitted.")
        var phoneBlock: Int?

        func run() async throws {
            if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
            if let phoneBlock, !(0..<700).contains(phoneBlock) { throw ValidationError("--phone-block must be 0-699") }
            let transport = try benchTransport(target)
            let run = RunID.next()
            let block = phoneBlock ?? (Int(run.prefix(8), radix: 16) ?? 0) % 700
            let recorder = Recorder()
            let metadata: Metadata = token.map { ["authorization": "Bearer \($0)"] } ?? [:]
            var options = CallOptions.defaults
            options.timeout = .milliseconds(deadlineMs)
            let callOptions = options
            let start = ContinuousClock.now
            let window = (start + .seconds(2))..<(start + .seconds(2 + seconds))
            try await withGRPCClient(transport: transport) { client in
                let call = Self.caller(rpc, client: client, run: run, phoneBlock: block, metadata: metadata, options: callOptions)
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await Progress.run(recorder: recorder, until: window.upperBound) }
                    if let rate {
                        await OpenLoop.run(rate: rate, until: window.upperBound, window: window, recorder: recorder, call: call)
                    } else {
                        await ClosedLoop.run(
                            concurrency: concurrency, until: window.upperBound, window: window, recorder: recorder, call: call)
                    }
                    group.cancelAll()
                }
            }
            var report = recorder.report(seconds: Double(seconds), run: run)
            report["rpc"] = rpc.rawValue
            report["mode"] = rate == nil ? "closed" : "open"
            report["concurrency"] = rate == nil ? concurrency : nil
            report["offered_rate_per_s"] = rate
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            if let json { try data.write(to: URL(fileURLWithPath: json)) }
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }

        /// One request of the workload, numbered; returns its status name.
        static func caller(
            _ workload: Workload, client: GRPCClient<HTTP2ClientTransport.Posix>, run: String, phoneBlock: Int, metadata: Metadata,
            options: CallOptions
        ) -> @Sendable (Int) async -> String {
            switch workload {
            case .submit:
                let intake = Kangyi_Intake_V1_IntakeService.Client(wrapping: client)
                return { number in
                    await status { _ = try await intake.submitHelpRequest(Self.submission(run: run, phoneBlock: phoneBlock, number: number), metadata: metadata, options: options) }
                }
            case .noop:
                return { _ in
                    await status {
                        try await client.unary(
                            request: ClientRequest(message: Google_Protobuf_Empty(), metadata: metadata), descriptor: Noop.method,
                            serializer: ProtobufSerializer<Google_Protobuf_Empty>(),
                            deserializer: ProtobufDeserializer<Google_Protobuf_Empty>(), options: options
                        ) { _ = try $0.message }
                    }
                }
            }
        }

        static func status(_ body: () async throws -> Void) async -> String {
            do {
                try await body()
                return "ok"
            } catch let error as RPCError {
                return "\(error.code)"
            } catch {
                return "transport"
            }
        }

        /// A new help request: its own request id, phone and text, so it is a new row — not a replay, not a
        /// repeat. A phone is 1, then the block (a digit 3–9 and two more: 700 blocks), then the worker and
        /// its call's sequence (2 + 5 digits), so no two calls of a run share one, and runs given different
        /// blocks share none. (Runs of one `make bench` once shared phones — one digit from the run id —
        /// and most of a run's submissions were repeats: the repeat path and its row locks was measured,
        /// not a new request's. `make bench` now gives each run its own block and fails on repeats.)
        static func submission(run: String, phoneBlock: Int, number: Int) -> Kangyi_Intake_V1_SubmitHelpRequestRequest {
            let prefix = "1\(3 + phoneBlock % 7)" + String(100 + phoneBlock / 7).dropFirst()
            // Closed-loop numbers are worker × 10,000,000 + sequence; open-loop ones count from 0.
            let (worker, sequence) = number.quotientAndRemainder(dividingBy: 10_000_000)
            let digits = String(10_000_000 + (worker % 100) * 100_000 + sequence % 100_000).dropFirst()
            return .with {
                $0.requestID = "bench-\(run)-\(number)"
                $0.category = "food_supply"
                $0.district = "410102"
                $0.contact = .with { $0.phone = prefix + digits }
                $0.description_p = "压测请求 \(UUID().uuidString) \(UInt64.random(in: 0...UInt64.max))：需要生活物资"
                $0.urgency = .urgent
            }
        }
    }
}

/// `concurrency` workers, each sending its next request as soon as the last is answered.
enum ClosedLoop {
    static func run(
        concurrency: Int, until end: ContinuousClock.Instant, window: Range<ContinuousClock.Instant>, recorder: Recorder,
        call: @escaping @Sendable (Int) async -> String
    ) async {
        await withDiscardingTaskGroup { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var sequence = 0
                    while ContinuousClock.now < end {
                        sequence += 1
                        let sent = ContinuousClock.now
                        recorder.started()
                        let code = await call(worker * 10_000_000 + sequence)
                        recorder.finished(code: code, latency: ContinuousClock.now - sent, counted: window.contains(sent) && ContinuousClock.now <= end)
                    }
                }
            }
        }
    }
}

/// Requests sent on a fixed schedule — the i-th at start + i/rate — whatever the answers; each one's
/// latency runs from when it should have been sent, so a generator that falls behind shows as latency.
enum OpenLoop {
    static func run(
        rate: Double, until end: ContinuousClock.Instant, window: Range<ContinuousClock.Instant>, recorder: Recorder,
        call: @escaping @Sendable (Int) async -> String
    ) async {
        let start = ContinuousClock.now
        let interval = 1 / rate
        await withDiscardingTaskGroup { group in
            var number = 0
            while true {
                let intended = start + .nanoseconds(Int64(Double(number) * interval * 1e9))
                guard intended < end else { break }
                if intended > .now { try? await Task.sleep(until: intended, tolerance: .microseconds(200)) }
                let counted = window.contains(intended)
                let this = number
                recorder.started()
                group.addTask {
                    let code = await call(this)
                    recorder.finished(code: code, latency: ContinuousClock.now - intended, counted: counted)
                }
                number += 1
            }
        }
    }
}

/// Prints one line a second to stderr while the load runs.
enum Progress {
    static func run(recorder: Recorder, until end: ContinuousClock.Instant) async {
        let start = ContinuousClock.now
        while ContinuousClock.now < end, !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let (sent, ok, failed, inFlight) = recorder.progress()
            let elapsed = (ContinuousClock.now - start).components.seconds
            FileHandle.standardError.write(Data(
                "\r  \(elapsed)s  sent \(sent)  ok \(ok)  refused/failed \(failed)  in flight \(inFlight)    ".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// A short random tag so runs never reuse each other's request ids.
/// A plaintext HTTP/2 transport to `--target` (host:port), for the load generators.
func benchTransport(_ target: String) throws -> HTTP2ClientTransport.Posix {
    let parts = target.split(separator: ":")
    guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--target must be host:port") }
    return try HTTP2ClientTransport.Posix(target: .ipv4(address: String(parts[0]), port: port), transportSecurity: .plaintext)
}

enum RunID {
    static func next() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 16) }
}

/// Latencies of successes and of refusals (microseconds, HDR histograms) and counts per status.
final class Recorder: Sendable {
    private struct State {
        var ok = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var refused = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var codes: [String: Int] = [:]
        var sent = 0
        var done = 0
        var okTotal = 0
    }

    private let state = Mutex(State())

    func started() { state.withLock { $0.sent += 1 } }

    func finished(code: String, latency: Duration, counted: Bool) {
        let micros = UInt64(max(0, latency.inMicroseconds))
        state.withLock {
            $0.done += 1
            if code == "ok" { $0.okTotal += 1 }
            guard counted else { return }
            if code == "ok" { _ = $0.ok.record(micros) } else { _ = $0.refused.record(micros) }
            $0.codes[code, default: 0] += 1
        }
    }

    func progress() -> (sent: Int, ok: Int, failed: Int, inFlight: Int) {
        state.withLock { ($0.sent, $0.okTotal, $0.done - $0.okTotal, $0.sent - $0.done) }
    }

    func report(seconds: Double, run: String) -> [String: Any] {
        let state = state.withLock { $0 }
        func ms(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double {
            histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
        }
        let ok = Int(state.ok.totalCount)
        return [
            "run": run, "seconds": seconds, "ok": ok, "rate_per_s": Double(ok) / seconds,
            "p50_ms": ms(state.ok, 50), "p90_ms": ms(state.ok, 90), "p99_ms": ms(state.ok, 99), "p999_ms": ms(state.ok, 99.9),
            "max_ms": state.ok.totalCount == 0 ? 0 : Double(state.ok.max) / 1000,
            "not_ok": Int(state.refused.totalCount),
            "not_ok_p50_ms": ms(state.refused, 50), "not_ok_p99_ms": ms(state.refused, 99),
            "codes": state.codes,
            // Every call answered, warm-up and tail included: what the servers' CPU counters cover.
            "calls": state.done,
        ]
    }
}
