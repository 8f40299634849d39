import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiAPI
import KangyiPlatform
import KangyiTestSupport
import Synchronization
import Testing

@Suite struct HealthBoardTests {
    @Test func servicesStartNotServingAndUnknownNamesAreUnknown() {
        let board = HealthBoard(services: ["kangyi.intake.v1.IntakeService"])
        #expect(board.status(of: "kangyi.intake.v1.IntakeService") == .notServing)
        #expect(board.status(of: "") == .notServing)
        #expect(board.status(of: "kangyi.nope.v1.Nope") == nil)
        board.setAll(.serving)
        #expect(board.status(of: "") == .serving)
    }

    @Test func watchersSeeTheCurrentStatusThenChangesAndEndOnShutdown() async {
        let board = HealthBoard(services: ["s"])
        let (updates, _) = board.updates(of: "s")
        board.setAll(.serving)
        board.setAll(.serving)  // not a change: not repeated
        board.shutDown()
        board.setAll(.serving)  // after shutdown nothing moves
        var seen: [HealthBoard.Status?] = []
        for await status in updates { seen.append(status) }
        // bufferingNewest(1) may coalesce, but the last word is always NOT_SERVING and the stream ends.
        #expect(seen.last == .notServing)
        #expect(board.status(of: "s") == .notServing)
    }
}

/// The database goes away and comes back while the server keeps running: health follows within 5 s
/// each way, seen by a real client over HTTP/2 through Check and Watch.
@Suite(.serialized) struct DatabaseHealthTests {
    @Test func healthFollowsTheDatabaseDownAndBackUp() async throws {
        let cluster = EmbeddedPostgres(
            dataDirectory: TestDatabase.repositoryRoot + "/.data/test-pg-health", durable: false,
            logger: TestDatabase.logger)
        let url = try cluster.start()
        defer { cluster.stop() }

        let server = GRPCServerService(
            name: "echo", services: [TestEchoService()], host: "127.0.0.1", port: 0, limits: .defaults,
            metrics: RPCMetrics(), logger: TestDatabase.logger)
        // A stopped database fails the probe at once; the timeout only has to survive a busy machine
        // (the other suites run beside this one), where 1 s was seen to flip health back and forth.
        let probe = DatabaseHealthProbe(
            url: url, boards: [server.board], interval: .milliseconds(250), timeout: .seconds(3),
            logger: TestDatabase.logger)

        try await withServiceGroup([probe, server]) { _ in
            let address = try await server.listeningAddress()
            try await withClient(address) { client in
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                let request = Grpc_Health_V1_HealthCheckRequest.with { $0.service = "kangyi.test.v1.Echo" }
                let watched = StatusLog()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await health.watch(request) { response in
                            for try await message in response.messages { watched.append(message.status) }
                        }
                    }
                    try await watched.waitFor(.serving, within: .seconds(5))
                    #expect(try await health.check(request).status == .serving)
                    cluster.stop()
                    try await watched.waitFor(.notServing, within: .seconds(5))
                    #expect(try await health.check(request).status == .notServing)
                    // What Kubernetes' liveness probe asks: the process answers, so it is alive.
                    #expect(try await health.check(.with { $0.service = HealthService.liveness }).status == .serving)

                    _ = try cluster.start(port: url.port)
                    try await watched.waitFor(.serving, within: .seconds(5))
                    #expect(try await health.check(.init()).status == .serving)
                    group.cancelAll()
                }
            }
        }
    }
}

@Suite struct HealthShutdownTests {
    /// SIGTERM with a watch open: the watcher hears NOT_SERVING, its stream ends, the server exits.
    @Test func anOpenWatchEndsWithNotServingOnGracefulShutdown() async throws {
        let server = GRPCServerService(
            name: "echo", services: [TestEchoService()], host: "127.0.0.1", port: 0, limits: .defaults,
            metrics: RPCMetrics(), logger: TestDatabase.logger)
        let watched = StatusLog()
        try await withServiceGroup([server]) { group in
            let address = try await server.listeningAddress()
            try await withClient(address) { client in
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                async let watch: Void = health.watch(.init()) { response in
                    for try await message in response.messages { watched.append(message.status) }
                }
                server.board.setAll(.serving)
                try await watched.waitFor(.serving, within: .seconds(5))
                await group.triggerGracefulShutdown()
                try await watch  // ends because the server ended it, not because the client gave up
            }
        }
        #expect(watched.all.last == .notServing)
    }
}

/// What a Watch stream delivered, for a test to wait on.
final class StatusLog: Sendable {
    private let seen = Mutex<[Grpc_Health_V1_HealthCheckResponse.ServingStatus]>([])
    private let consumed = Mutex(0)

    var all: [Grpc_Health_V1_HealthCheckResponse.ServingStatus] { seen.withLock { $0 } }

    func append(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus) { seen.withLock { $0.append(status) } }

    /// Waits until a status not yet consumed equals `wanted`; records an issue after `limit`.
    func waitFor(_ wanted: Grpc_Health_V1_HealthCheckResponse.ServingStatus, within limit: Duration) async throws {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
            let statuses = seen.withLock { $0 }
            let from = consumed.withLock { $0 }
            if let index = statuses[from...].firstIndex(of: wanted) {
                consumed.withLock { $0 = index + 1 }
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("health did not become \(wanted) within \(limit); saw \(seen.withLock { $0 })")
    }
}

