import KangyiPlatform

/// The intake service as the platform runs it: `kangyi serve intake`, or inside `kangyi dev`.
public enum Intake {
    public static let definition = ServiceDefinition(
        name: "intake", defaultPort: 50051, migrations: IntakeMigrations.all, dedicatedConnections: IntakeStore.lanes
    ) { runtime in
        // The committer's lanes and their connections share one event loop: a batch's round trips then
        // never hand the lane to another thread.
        let committerLoop = EventLoopTaskExecutor()
        let committerDatabase = try runtime.dedicatedDatabase(
            poolSize: IntakeStore.lanes, sessionSettings: IntakeStore.committerSessionSettings,
            eventLoop: committerLoop.eventLoop)
        let store = IntakeStore(
            client: runtime.database, committerClient: committerDatabase, committerExecutor: committerLoop,
            logger: runtime.logger)
        let reference = ReferenceDataCache(client: runtime.database, logger: runtime.logger)
        return AssembledService(
            rpcServices: [IntakeService(store: store, reference: reference)],
            background: [committerDatabase, store.committer])
    }
}
