import KangyiPlatform

/// The checkpoint service as the platform runs it: `kangyi serve checkpoint`, or inside `kangyi dev`.
/// Besides its RPCs it runs the group commit of vehicle logs and the keeper of their day partitions.
public enum Checkpoint {
    public static let definition = ServiceDefinition(
        name: "checkpoint", defaultPort: 50053, migrations: CheckpointMigrations.all
    ) { runtime in
        let retention = runtime.settings.checkpointRetentionDays
        let partitions = PartitionKeeper(client: runtime.database, retentionDays: retention, logger: runtime.logger)
        let logs = VehicleLogStore(client: runtime.database, partitions: partitions, logger: runtime.logger)
        let service = CheckpointService(
            logs: logs, administration: AdministrationStore(client: runtime.database, logger: runtime.logger),
            reference: ReferenceDataCache(client: runtime.database, logger: runtime.logger), retentionDays: retention)
        return AssembledService(rpcServices: [service], background: [logs.committer, partitions])
    }
}
