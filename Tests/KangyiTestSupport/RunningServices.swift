import GRPCCore
import GRPCNIOTransportHTTP2
import KangyiPlatform
import Logging
import ServiceLifecycle

/// Runs lifecycle services (servers, pools, probes) for the duration of `body`, then shuts them down
/// gracefully, the way SIGTERM would, and waits for them to finish.
public func withServiceGroup<T: Sendable>(
    _ services: [any Service], logger: Logger = TestDatabase.logger,
    _ body: @Sendable (ServiceGroup) async throws -> T
) async throws -> T {
    let group = ServiceGroup(services: services, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let result = try await body(group)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

/// A gRPC client over real HTTP/2 to `address` (`host:port`), for the duration of `body`.
public func withClient<T: Sendable>(
    _ address: String, _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
) async throws -> T {
    let parts = address.split(separator: ":")
    let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: String(parts[0]), port: Int(parts[1])!), transportSecurity: .plaintext)
    return try await withGRPCClient(transport: transport) { client in try await body(client) }
}

/// `body`'s result, or nil if `deadline` passes first (the body is then cancelled).
public func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () async throws -> T
) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(until: deadline)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}
