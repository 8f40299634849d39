import ArgumentParser
import Foundation
import GRPCCore
import GRPCProtobuf
import KangyiPlatform
import SwiftProtobuf
import UnixSignals

/// `kangyi.bench.v1.Bench/Noop`: answers an empty message with an empty message on the platform's own
/// server stack (HTTP/2 transport, interceptors, logging, metrics) — what `make bench` measures as the
/// ceiling of the gRPC layer on this machine. Only `kangyi serve noop` runs it; it is not a service.
enum Noop {
    static let method = MethodDescriptor(fullyQualifiedService: "kangyi.bench.v1.Bench", method: "Noop")

    static let definition = ServiceDefinition(name: "noop", defaultPort: 50099, migrations: []) { _ in
        AssembledService(rpcServices: [Handler()])
    }

    struct Handler: RegistrableRPCService {
        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Noop.method, deserializer: ProtobufDeserializer<Google_Protobuf_Empty>(),
                serializer: ProtobufSerializer<Google_Protobuf_Empty>()
            ) { request, _ in
                for try await _ in request.messages {}
                return StreamingServerResponse(single: ServerResponse(message: Google_Protobuf_Empty()))
            }
        }
    }
}

/// `kangyi bench bare-noop`: the no-op on grpc-swift alone — the platform's transport settings, none of
/// its interceptors, health, reflection, logging or metrics — until SIGTERM. `make bench` sets the
/// platform's own no-op against it.
struct BenchBareNoop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bare-noop", abstract: "Serve the no-op on a bare grpc-swift server (for make bench).")

    @Option(help: "Port to listen on.") var port: Int
    @Option(help: "Address to listen on.") var host = "127.0.0.1"

    func run() async throws {
        let settings = try Settings(environment: ProcessInfo.processInfo.environment)
        let server = GRPCServerService.bare(services: [Noop.Handler()], host: host, port: port, limits: settings.server)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            // SIGTERM ends it cleanly (exit 0), as every other server `make bench` stops.
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                server.beginGracefulShutdown()
                break
            }
            try await group.waitForAll()
        }
    }
}
