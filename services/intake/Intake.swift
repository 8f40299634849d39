import KangyiPlatform

/// The intake service as the platform runs it: `kangyi serve intake`, or inside `kangyi dev`.
public enum Intake {
    public static let definition = ServiceDefinition(
        name: "intake", defaultPort: 50051, migrations: IntakeMigrations.all, dedicatedConnections: IntakeStore.lanes,
        servesFromOneEventLoop: true
    ) { runtime in
        // A submission is a few short steps between round trips — the call in, the committer's batch, the
        // answer out — so the server, the committer's lanes and their connections share one event loop, and
        // a submission is never handed to another thread (services/intake/README.md, item 11).
        let committerDatabase = try runtime.dedicatedDatabase(
            poolSize: IntakeStore.lanes, sessionSettings: IntakeStore.committerSessionSettings)
        let store = IntakeStore(
            client: runtime.database, committerClient: committerDatabase, committerExecutor: runtime.eventLoop,
            logger: runtime.logger)
        let reference = ReferenceDataCache(client: runtime.database, logger: runtime.logger)
        return AssembledService(
            rpcServices: [IntakeService(store: store, reference: reference)],
            background: [committerDatabase, store.committer])
    }
}
