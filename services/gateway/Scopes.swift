import KangyiPlatform

/// What each routed method needs, in one place. A method that is routed but not listed here is refused
/// to everyone (a test walks every routed method, so a new one cannot slip through unlisted).
public enum Scopes {
    public static let intakeSubmit = "intake.submit"
    public static let intakeRead = "intake.read"
    public static let intakeTransition = "intake.transition"
    public static let verificationWork = "verification.work"
    public static let verificationReport = "verification.report"
    /// Vehicle logs in (terminals: a terminal's token uploads only as that terminal, see the checkpoint service).
    public static let checkpointUpload = "checkpoint.upload"
    /// Vehicle logs out: listings, histories, the flagged feed, statistics, exports (public security,
    /// the health commission).
    public static let checkpointRead = "checkpoint.read"
    /// Checkpoints, terminals, risk areas and watched plates (operators).
    public static let checkpointAdmin = "checkpoint.admin"
    /// The investigators' work: cases, contacts, the call queue, attempts, closing, persons.
    public static let tracingWork = "tracing.work"
    /// Supervisors and analysts: tracing statistics, the overdue feed, the personal-data access log.
    public static let tracingReport = "tracing.report"
    /// Observations in: inspectors, outlets' feeds, the citizens' complaint front end.
    public static let pricewatchReport = "pricewatch.report"
    /// Series, indicators, observations, alerts, controls and reference data out (analysts).
    public static let pricewatchRead = "pricewatch.read"
    /// Working alerts to enforcement, price controls, baselines, commodities and outlets (market supervision).
    public static let pricewatchEnforce = "pricewatch.enforce"
    /// Unmasked personal data in answers (checked by the services themselves).
    public static let personalData = Scope.personalData

    public static let all = [
        intakeSubmit, intakeRead, intakeTransition, verificationWork, verificationReport, checkpointUpload, checkpointRead,
        checkpointAdmin, tracingWork, tracingReport, pricewatchReport, pricewatchRead, pricewatchEnforce, personalData,
    ]

    /// `package.Service/Method` → the scope a caller's token must hold.
    public static let required: [String: String] = {
        var table: [String: String] = [:]
        func add(_ service: String, _ methods: [String], _ scope: String) {
            for method in methods { table["\(service)/\(method)"] = scope }
        }
        let intake = "kangyi.intake.v1.IntakeService"
        add(intake, ["SubmitHelpRequest", "LookupHelpRequest", "SubmitSuggestion", "ListCategories"], intakeSubmit)
        add(intake, ["GetHelpRequest", "ListHelpRequests", "WatchHelpRequests"], intakeRead)
        add(intake, ["TransitionHelpRequest"], intakeTransition)
        let verification = "kangyi.verification.v1.VerificationService"
        add(
            verification,
            ["ClaimNext", "ReleaseClaim", "Verify", "Reject", "MarkDuplicate", "Assign", "Resolve", "RecordReturnVisit",
             "Reopen", "GetCase", "ListCases"],
            verificationWork)
        add(verification, ["GetStatistics", "WatchEscalations"], verificationReport)
        let checkpoint = "kangyi.checkpoint.v1.CheckpointService"
        add(checkpoint, ["UploadVehicleLogs", "RecordVehicleLog"], checkpointUpload)
        add(
            checkpoint,
            ["ListVehicleLogs", "GetPlateHistory", "WatchFlaggedVehicles", "GetCheckpointStatistics", "ExportVehicleLogs",
             "ListCheckpoints", "ListTerminals", "ListRiskAreas", "ListWatchedPlates"],
            checkpointRead)
        add(
            checkpoint,
            ["SetCheckpoint", "RegisterTerminal", "RetireTerminal", "SetRiskArea", "WatchPlate", "UnwatchPlate"],
            checkpointAdmin)
        let tracing = "kangyi.tracing.v1.TracingService"
        add(
            tracing,
            ["CreateCase", "AddContacts", "ClaimNextCall", "ReleaseCall", "RecordCallAttempt", "CloseTask", "GetTask",
             "GetPerson", "FindPerson", "ListTasks"],
            tracingWork)
        add(tracing, ["WatchOverdue", "GetTracingStatistics", "ListAccessLog"], tracingReport)
        let pricewatch = "kangyi.pricewatch.v1.PriceWatchService"
        add(pricewatch, ["SubmitPriceObservations", "StreamPriceObservations"], pricewatchReport)
        add(
            pricewatch,
            ["GetPriceSeries", "ListPriceObservations", "GetIndicators", "ListAlerts", "WatchAlerts", "GetOutletRecord",
             "ListPriceControls", "ListBaselines", "ListCommodities", "ListOutlets"],
            pricewatchRead)
        add(
            pricewatch, ["UpdateAlert", "SetPriceControl", "EndPriceControl", "SetBaseline", "SetCommodity", "SetOutlet"],
            pricewatchEnforce)
        return table
    }()

    /// The kinds of callers and the scopes a token of that kind gets (`kangyi token create --kind`).
    public static let kinds: [String: [String]] = [
        // Citizens' price complaints arrive through the front end too.
        "citizen-frontend": [intakeSubmit, pricewatchReport],
        "department-system": [intakeSubmit, intakeRead, checkpointRead],
        // Its caller is `terminal.<terminal id>` (`kangyi token create --kind checkpoint-terminal --terminal ID`).
        "checkpoint-terminal": [checkpointUpload],
        "checkpoint-operator": [checkpointRead, checkpointAdmin],
        "staff-tool": [intakeRead, verificationWork, personalData],
        "analyst": [verificationReport, tracingReport, pricewatchRead],
        // Inspectors and outlets' systems report prices; market supervision works the alerts.
        "price-reporter": [pricewatchReport],
        "market-supervisor": [pricewatchRead, pricewatchEnforce],
        "supervisor": [intakeRead, verificationWork, verificationReport, tracingWork, tracingReport],
        // Contact tracers: they phone people, so they read personal data (each unmasked read is logged).
        "investigator": [tracingWork, personalData],
        "development": all,
    ]

    /// Services any caller may use without a token: the gateway's own health and reflection.
    static let open: Set<String> = [
        "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    ]
}
