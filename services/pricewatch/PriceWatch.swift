import KangyiPlatform
import Logging
import PostgresNIO

/// The price-watch service as the platform runs it: `kangyi serve pricewatch`, or inside `kangyi dev`.
/// Besides its RPCs it runs the group commit of observations (rules checked, day aggregates kept).
public enum PriceWatch {
    public static let definition = ServiceDefinition(
        name: "pricewatch", defaultPort: 50054, migrations: PriceWatchMigrations.all
    ) { runtime in
        let committer = observationCommitter(client: runtime.database, settings: runtime.settings, checkRules: true, logger: runtime.logger)
        let service = PriceWatchService(
            committer: committer, series: SeriesStore(client: runtime.database, logger: runtime.logger),
            alerts: AlertStore(client: runtime.database, logger: runtime.logger),
            reference: PriceReferenceStore(client: runtime.database, logger: runtime.logger),
            cities: ReferenceDataCache(client: runtime.database, logger: runtime.logger))
        return AssembledService(rpcServices: [service], background: [committer])
    }

    /// The group commit of observations (the service's, and `kangyi pricewatch import`'s without rules).
    static func observationCommitter(
        client: DatabasePool, settings: Settings, checkRules: Bool, logger: Logger
    ) -> GroupCommitter<NewObservation, ObservationOutcome> {
        let rules = Rules.Settings(
            baseDate: settings.priceWatch.baseDate, markupCapBasisPoints: Int64(settings.priceWatch.markupCapPercent) * 100,
            jumpZ: settings.priceWatch.jumpZ, jumpMinimumCount: Rules.Settings.defaults.jumpMinimumCount)
        let batches = ObservationBatches(
            client: client, partitions: MonthPartitions(client: client, logger: logger), rules: rules, checkRules: checkRules,
            logger: logger)
        return GroupCommitter(maxBatch: ObservationBatches.largestCommit, lanes: 2, commit: batches.commit)
    }
}
