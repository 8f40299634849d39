import NIOCore
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
