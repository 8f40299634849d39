import Dispatch
import KangyiPlatform
import Testing

/// `abandoning(after:)`: a bounded wait even for work that ignores cancellation.
@Suite struct AbandoningTests {
    struct Refused: Error {}

    /// Two seconds that no cancellation shortens, as a library wait on a server that never answers.
    static func deaf() async -> Int {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) { continuation.resume(returning: 1) }
        }
    }

    @Test func workThatIgnoresCancellationIsLeftAtTheTimeout() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let answer = try await abandoning(after: .milliseconds(50)) { await Self.deaf() }
        #expect(answer == nil)
        #expect(clock.now - started < .seconds(1))
    }

    @Test func workThatFinishesInTimeIsAnsweredAndItsErrorsThrown() async throws {
        #expect(try await abandoning(after: .seconds(5)) { 7 } == 7)
        await #expect(throws: Refused.self) { try await abandoning(after: .seconds(5)) { () async throws -> Int in throw Refused() } }
    }

    @Test func aCancelledCallerIsAnsweredAtOnce() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let waiting = Task { try await abandoning(after: .seconds(30)) { await Self.deaf() } }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(try await waiting.value == nil)
        #expect(clock.now - started < .seconds(1))
    }
}
