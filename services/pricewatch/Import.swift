import Foundation
import KangyiPlatform
import KangyiAPI
import Logging
import PostgresNIO

/// `kangyi pricewatch import FILE.csv`: historical observations, streamed in constant memory (a line at a
/// time, 1,000 per transaction), idempotent on (submitter, observation_id) like every submission, day
/// aggregates kept; the gouging rules are not run on history (no alerts). Columns, with a header line:
///
///     submitter,observation_id,commodity,outlet,price_fen,quantity,purchase_cost_fen,observed_at,source
///
/// `observed_at` is ISO 8601 with an offset (2020-01-15T09:30:00+08:00); `source` is inspector,
/// outlet_feed or citizen_complaint; `purchase_cost_fen` may be empty. Fields hold no commas.
public struct PriceImport: Sendable {
    public struct Summary: Sendable, CustomStringConvertible {
        public var lines = 0
        public var stored = 0
        public var duplicates = 0
        public var refused = 0
        /// The first refusals, with their line numbers and reasons.
        public var problems: [String] = []

        public var description: String {
            "\(lines) lines: \(stored) stored, \(duplicates) duplicates, \(refused) refused"
                + (problems.isEmpty ? "" : "\n  " + problems.joined(separator: "\n  "))
        }
    }

    static let columns = ["submitter", "observation_id", "commodity", "outlet", "price_fen", "quantity", "purchase_cost_fen", "observed_at", "source"]
    static let chunk = 1_000

    let batches: ObservationBatches

    public init(client: DatabasePool, logger: Logger) {
        batches = ObservationBatches(
            client: client, partitions: MonthPartitions(client: client, logger: logger), rules: .defaults, checkRules: false,
            logger: logger)
    }

    /// Imports `lines` (the file's, header first); `progress` is told the summary after every chunk.
    public func run(lines: some AsyncSequence<String, any Error>, progress: (Summary) -> Void = { _ in }) async throws -> Summary {
        var summary = Summary()
        var pending: [(line: Int, observation: NewObservation)] = []
        var sawHeader = false
        func flush() async throws {
            guard !pending.isEmpty else { return }
            let outcomes = try await batches.commit(pending.map(\.observation))
            for (entry, outcome) in zip(pending, outcomes) {
                switch try outcome.get() {
                case .stored: summary.stored += 1
                case .duplicate: summary.duplicates += 1
                case .refused(let violations): refuse(&summary, line: entry.line, violations.map { "\($0.field): \($0.reason)" })
                }
            }
            pending.removeAll(keepingCapacity: true)
            progress(summary)
        }
        for try await raw in lines {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            if !sawHeader {
                sawHeader = true
                guard line.split(separator: ",", omittingEmptySubsequences: false).map(String.init) == Self.columns else {
                    throw ServiceError.invalidArgument(
                        field: "header", reason: "UNEXPECTED_COLUMNS", "the first line must be: " + Self.columns.joined(separator: ","))
                }
                continue
            }
            summary.lines += 1
            switch Self.parse(line) {
            case .failure(let refusal): refuse(&summary, line: summary.lines + 1, refusal.violations.map { "\($0.field): \($0.reason)" })
            case .success(let observation): pending.append((summary.lines + 1, observation))
            }
            if pending.count == Self.chunk { try await flush() }
        }
        try await flush()
        return summary
    }

    private func refuse(_ summary: inout Summary, line: Int, _ reasons: [String]) {
        summary.refused += 1
        if summary.problems.count < 20 { summary.problems.append("line \(line): " + reasons.joined(separator: "; ")) }
    }

    static func parse(_ line: String) -> Result<NewObservation, NewObservation.Refusal> {
        // PostgreSQL refuses the NUL character in text: the line is refused here, not the whole chunk there.
        guard !line.utf8.contains(0) else {
            return .failure(.init(violations: [.nulCharacter(field: "line")]))
        }
        let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        guard fields.count == columns.count else {
            return .failure(.init(violations: [.init(field: "line", reason: "COLUMN_COUNT", description: "expected \(columns.count) columns")]))
        }
        var wire = Kangyi_Pricewatch_V1_PriceObservation()
        wire.observationID = fields[1]
        wire.commodity = fields[2]
        wire.outlet = fields[3]
        wire.priceFen = Int64(fields[4]) ?? -1
        wire.quantity = Int64(fields[5]) ?? -1
        wire.purchaseCostFen = fields[6].isEmpty ? 0 : Int64(fields[6]) ?? -1
        if let date = ISO8601DateFormatter().date(from: fields[7]) { wire.observedAt = .init(date: date) }
        wire.source = PriceWatchNames.sources.wire(fields[8]) ?? .unspecified
        guard RequestID.isWellFormed(fields[0]) else {
            return .failure(.init(violations: [.init(field: "submitter", reason: "INVALID_SUBMITTER", description: "1-128 printable ASCII characters")]))
        }
        return NewObservation.check(wire, submitter: fields[0]).mapError { $0.under("observation") }
    }
}

/// A file's lines, read 64 KiB at a time as they are asked for (constant memory however large the file).
public struct FileLines: AsyncSequence, Sendable {
    public typealias Element = String
    let handle: FileHandle

    public init(_ handle: FileHandle) { self.handle = handle }

    public func makeAsyncIterator() -> Iterator { Iterator(handle: handle) }

    public struct Iterator: AsyncIteratorProtocol {
        let handle: FileHandle
        var buffer = Data()
        var finished = false

        public mutating func next() async throws -> String? {
            while true {
                if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffer[buffer.startIndex..<newline]
                    buffer.removeSubrange(buffer.startIndex...newline)
                    return String(decoding: line, as: UTF8.self)
                }
                if finished {
                    guard !buffer.isEmpty else { return nil }
                    defer { buffer.removeAll() }
                    return String(decoding: buffer, as: UTF8.self)
                }
                let chunk = try handle.read(upToCount: 65_536) ?? Data()
                if chunk.isEmpty { finished = true } else { buffer.append(chunk) }
            }
        }
    }
}
