import KangyiAPI
import KangyiPlatform

/// The verification service as the platform runs it: `kangyi serve verification`, or inside `kangyi dev`.
/// Besides its RPCs it runs three loops: the intake feed follower (new submissions → cases), the intake
/// sync (outbox → intake's public status) and the escalation sweeper (service-level breaches).
public enum Verification {
    public static let definition = ServiceDefinition(
        name: "verification", defaultPort: 50052, migrations: VerificationMigrations.all, calls: ["intake"]
    ) { runtime in
        let store = CaseStore(client: runtime.database, logger: runtime.logger)
        let peer = try runtime.peerClient("intake")
        let intake = Kangyi_Intake_V1_IntakeService.Client(wrapping: peer.grpc)
        let poll = runtime.settings.backgroundPollInterval
        let sync = IntakeSync(
            store: store, intake: intake, callTimeout: runtime.settings.peerCallTimeout, retryInterval: poll,
            logger: runtime.logger)
        let service = VerificationService(
            store: store, sync: sync, reference: ReferenceDataCache(client: runtime.database, logger: runtime.logger))
        return AssembledService(
            rpcServices: [service],
            // The peer client first: started before and stopped after the loops that use it.
            background: [
                peer, sync,
                IntakeFeedFollower(store: store, intake: intake, retryDelay: poll, logger: runtime.logger),
                EscalationSweeper(store: store, interval: poll, logger: runtime.logger),
            ])
    }
}
