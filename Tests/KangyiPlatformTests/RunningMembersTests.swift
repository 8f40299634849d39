@testable import KangyiPlatform
import KangyiTestSupport
import ServiceLifecycle
import Testing

/// The process's record of which group members still run — what the shutdown deadline names when a
/// member hangs — must not change how the group stops them.
@Suite struct RunningMembersTests {
    /// Returns once the group's graceful shutdown reaches it.
    struct UntilShutdown: Service {
        func run() async throws { try await gracefulShutdown() }
    }

    @Test func aMemberIsNamedWhileItRunsAndStillHearsTheGroupsShutdown() async throws {
        let running = RunningMembers()
        try await withServiceGroup([running.track(UntilShutdown()), running.track(UntilShutdown())]) { _ in
            for _ in 0..<200 where running.names.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(running.names == ["UntilShutdown", "UntilShutdown"])
        }
        // withServiceGroup returned: graceful shutdown reached both through the wrapper.
        #expect(running.names.isEmpty)
    }
}
