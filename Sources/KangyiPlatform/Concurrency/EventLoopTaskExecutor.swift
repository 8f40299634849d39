import NIOCore
import NIOPosix
import PostgresNIO

/// A task executor on one NIO event loop. A task that prefers it, and whose database connections live
/// on the same loop, answers each round trip without handing the task to another thread: the reply's
/// continuation runs where the reply was read. Work run here holds up the loop's other channels, so it
/// suits short steps between round trips (a group committer's lanes), not computation.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    /// On the next loop of NIO's shared group, where PostgreSQL's and gRPC's connections live by default.
    public convenience init() { self.init(PostgresClient.defaultEventLoopGroup.next()) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// The event loop of a service that serves from one (``ServiceDefinition/servesFromOneEventLoop``): its
/// server's sockets and HTTP/2 streams, its RPC handlers and what they await, and the database connections
/// it puts there all run on this one thread, so a call is never handed from thread to thread. (Measured on
/// the platform's no-op at 2,800 calls a second: 0.40 → 0.28 ms of CPU a call; the hand-offs were most of
/// it.) The service then uses about one core; more are replicas.
///
/// Like NIO's shared group, it lives as long as the process: connections closing after their server has
/// stopped still schedule work on it (shutting it down at the end made NIO report just that).
public final class ServiceEventLoop: Sendable {
    let group: MultiThreadedEventLoopGroup
    public let executor: EventLoopTaskExecutor

    public init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        executor = EventLoopTaskExecutor(group.next())
    }
}
