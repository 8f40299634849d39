import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import PostgresNIO
import ServiceLifecycle
import SwiftProtobuf

@testable import KangyiGateway

/// A gateway on real ports in front of the test-only Relay backend (every RPC kind) and, for the real
/// services' routes, a backend address where nothing listens — so an admitted call is UNAVAILABLE and a
/// refused one is refused by the gateway itself. Its gRPC port is the front door, as `kangyi serve`
/// runs it (a call with a token the gateway knows is relayed straight to the backend, the rest forwarded
/// by the gateway's server), or the gateway's server alone.
struct GatewayHarness: Sendable {
    enum Door: Sendable, CaseIterable { case front, server }

    let tokens: TokenStore
    let gatewayAddress: String
    let httpAddress: String
    let metrics: RPCMetrics

    static let relayScope = "test.relay"

    static func run(_ label: String, door: Door = .front, _ body: @Sendable (GatewayHarness) async throws -> Void) async throws {
        let url = try await TestDatabase.migrated(label, Gateway.definition.migrations)
        try await withDatabasePool(url) { client in
            let logger = TestDatabase.logger
            let relay = GRPCServerService(
                name: "relay", services: [RelayService()], host: "127.0.0.1", port: 0, limits: .defaults,
                metrics: RPCMetrics(), logger: logger, identity: RequestContextInterceptor(key: TestIdentity.key))
            try await withServiceGroup([relay]) { _ in
                let relayAddress = try await relay.listeningAddress()
                let relayPeer = BackendClients {
                    try PeerClient.makeClient(name: "relay", address: relayAddress, key: TestIdentity.key)
                }
                let down = try ReservedPort()
                let downPeer = BackendClients { try PeerClient.makeClient(name: "down", address: down.address, key: TestIdentity.key) }
                let metrics = RPCMetrics()
                var settings = Settings()
                settings.httpPort = 0
                settings.identityKey = TestIdentity.key
                let runtime = ServiceRuntime(
                    database: client, settings: settings, logger: logger,
                    peers: ["relay": try await relay.listeningAddress(), "down": down.address], metrics: metrics)
                var routes = Routes.backends.mapValues { _ in "down" }
                routes[RelayService.service] = "relay"
                var scopes = Scopes.required
                for method in RelayService.descriptorFile.service[0].method { scopes["\(RelayService.service)/\(method.name)"] = relayScope }
                var files = Google_Protobuf_FileDescriptorSet()
                files.file = Array(DescriptorIndex.embedded.files.values) + [RelayService.descriptorFile]
                let assembled = try Gateway.assemble(
                    backends: ["relay": relayPeer, "down": downPeer], routes: routes, scopes: scopes,
                    runtime: runtime, index: DescriptorIndex(files))
                let gateway = GRPCServerService(
                    name: "gateway", services: assembled.rpcServices, host: "127.0.0.1", port: 0, limits: .defaults,
                    metrics: metrics, logger: logger, identity: assembled.identity!, admission: assembled.admission)
                let http = assembled.http!
                let front = assembled.front!(
                    FrontPlacement(host: "127.0.0.1", port: 0, limits: .defaults, inFlight: gateway.inFlight) {
                        try await gateway.listeningAddress()
                    })
                let services: [any Service] =
                    [relayPeer, downPeer] + assembled.background + [gateway, http] + (door == .front ? [front] : [])
                try await withServiceGroup(services) { _ in
                    let harness = GatewayHarness(
                        tokens: TokenStore(client: client, logger: logger),
                        gatewayAddress: try await door == .front ? front.listeningAddress() : gateway.listeningAddress(),
                        httpAddress: try await http.listeningAddress(), metrics: metrics)
                    try await body(harness)
                    withExtendedLifetime(down) {}
                }
            }
        }
    }

    /// Calls the front door relayed straight to a backend so far.
    var directCalls: Int {
        metrics.exposition().split(separator: "\n").first { $0.hasPrefix(#"kangyi_gateway_calls_total{path="direct"}"#) }
            .flatMap { $0.split(separator: " ").last }.flatMap { Int($0) } ?? 0
    }

    /// A new token with these scopes.
    func token(
        _ caller: String = "tester", department: String = "qa", scopes: [String] = [relayScope], rate: Double = 1000,
        burst: Int = 1000, expiresAt: Date? = nil
    ) async throws -> String {
        try await tokens.create(
            caller: caller, department: department, scopes: scopes, ratePerSecond: rate, burst: burst, expiresAt: expiresAt
        ).token
    }
}

typealias Text = Google_Protobuf_StringValue

func bearer(_ token: String) -> Metadata { ["authorization": "Bearer \(token)"] }

extension GRPCClient {
    func relayEcho(_ value: String, metadata: Metadata, timeout: Duration? = nil) async throws -> (String, Metadata) {
        var options = CallOptions.defaults
        options.timeout = timeout
        return try await unary(
            request: ClientRequest(message: Text.with { $0.value = value }, metadata: metadata),
            descriptor: RelayService.echo, serializer: ProtobufSerializer<Text>(), deserializer: ProtobufDeserializer<Text>(),
            options: options
        ) { (try $0.message.value, $0.metadata) }
    }

    /// Any method, with raw bytes, as a bidirectional stream: the messages and trailers, or the error.
    func raw(_ method: MethodDescriptor, _ messages: [[UInt8]], metadata: Metadata, timeout: Duration = .seconds(10))
        async throws -> (messages: [[UInt8]], trailers: Metadata)
    {
        var options = CallOptions.defaults
        options.timeout = timeout
        return try await bidirectionalStreaming(
            request: StreamingClientRequest(metadata: metadata) { writer in
                for message in messages { try await writer.write(message) }
            },
            descriptor: method, serializer: RawBytes(), deserializer: RawBytes(), options: options
        ) { response in
            var received: [[UInt8]] = []
            var trailers: Metadata = [:]
            for try await part in try response.accepted.get().bodyParts {
                switch part {
                case .message(let bytes): received.append(bytes)
                case .trailingMetadata(let metadata): trailers = metadata
                }
            }
            return (received, trailers)
        }
    }
}

func text(_ value: String) throws -> [UInt8] { try Text.with { $0.value = value }.serializedBytes() }
func value(_ bytes: [UInt8]) throws -> String { try Text(serializedBytes: bytes).value }
