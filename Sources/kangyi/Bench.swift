import ArgumentParser
import GRPCNIOTransportHTTP2

/// `kangyi bench`: what `make bench` needs that only the server's own code can do — terminals uploading
/// vehicle logs, price feeds, a bare grpc-swift no-op. Unary load (submissions, the no-op) is driven by
/// `kangyi-load` (Sources/kangyi-load, C on nghttp2): a Swift generator did the same at twenty times the
/// CPU a call, on the cores it measured, and was removed.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators for `make bench`.", subcommands: [BenchUpload.self, BenchPrices.self, BenchBareNoop.self])
}

/// A plaintext HTTP/2 transport to `--target` (host:port), for the load generators.
func benchTransport(_ target: String) throws -> HTTP2ClientTransport.Posix {
    let parts = target.split(separator: ":")
    guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--target must be host:port") }
    return try HTTP2ClientTransport.Posix(target: .ipv4(address: String(parts[0]), port: port), transportSecurity: .plaintext)
}

/// A short random tag so runs never reuse each other's request ids.
enum RunID {
    static func next() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 16) }
}
