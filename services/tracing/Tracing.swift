import KangyiAPI
import KangyiPlatform

/// The tracing service as the platform runs it: `kangyi serve tracing`, or inside `kangyi dev`. Besides
/// its RPCs it runs the checkpoint follower (flagged vehicles → tasks to call their drivers) and the
/// overdue sweeper. It refuses to start without the personal-data keys.
public enum Tracing {
    public static let definition = ServiceDefinition(
        name: "tracing", defaultPort: 50055, migrations: TracingMigrations.all, calls: ["checkpoint"]
    ) { runtime in
        guard let keys = runtime.settings.personalData else {
            throw SettingsError(
                variable: "KANGYI_PII_KEY",
                expected: "base64 of 32 random bytes (openssl rand -base64 32), with KANGYI_PII_INDEX_KEY: the tracing "
                    + "service seals names, phones, ID numbers and addresses with it and will not store them in the clear",
                missing: true)
        }
        let persons = PersonStore(client: runtime.database, keys: keys, logger: runtime.logger)
        let tasks = TaskStore(client: runtime.database, persons: persons, rules: runtime.settings.tracing, logger: runtime.logger)
        let peer = try runtime.peerClient("checkpoint")
        let poll = runtime.settings.backgroundPollInterval
        let service = TracingService(tasks: tasks, reference: ReferenceDataCache(client: runtime.database, logger: runtime.logger))
        return AssembledService(
            rpcServices: [service],
            // The peer client first: started before and stopped after the follower that uses it.
            background: [
                peer,
                CheckpointFeedFollower(
                    store: tasks, checkpoint: Kangyi_Checkpoint_V1_CheckpointService.Client(wrapping: peer.grpc),
                    retryDelay: poll, logger: runtime.logger),
                OverdueSweeper(store: tasks, interval: poll, logger: runtime.logger),
            ])
    }
}
