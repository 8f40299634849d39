import KangyiPlatform

/// The intake service as the platform runs it: `kangyi serve intake`, or inside `kangyi dev`.
public enum Intake {
    public static let definition = ServiceDefinition(
        name: "intake", defaultPort: 50051, migrations: IntakeMigrations.all, dedicatedConnections: IntakeStore.lanes
    ) { runtime in
        let committerDatabase = try runtime.dedicatedDatabase(
            poolSize: IntakeStore.lanes, sessionSettings: IntakeStore.committerSessionSettings)
        let store = IntakeStore(client: runtime.database, committerClient: committerDatabase, logger: runtime.logger)
        let reference = ReferenceDataCache(client: runtime.database, logger: runtime.logger)
        return AssembledService(
            rpcServices: [IntakeService(store: store, reference: reference)],
            background: [committerDatabase, store.committer])
    }
}
