import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import ServiceLifecycle
import SwiftProtobuf

/// `kangyi.checkpoint.v1.CheckpointService`: the RPCs, translating between the wire and the checkpoint domain.
public struct CheckpointService: Kangyi_Checkpoint_V1_CheckpointService.SimpleServiceProtocol {
    let logs: VehicleLogStore
    let administration: AdministrationStore
    let reference: ReferenceDataCache
    let retentionDays: Int
    /// Logs held by all upload streams together (``UploadStream/sharedWindow``).
    let uploads = SharedCapacity(capacity: UploadStream.sharedWindow)

    /// A terminal's token names its caller `terminal.<terminal id>` (`kangyi token create --kind
    /// checkpoint-terminal --terminal ID`); such a caller uploads only as that terminal. Other callers
    /// with the upload scope (operators' imports, development) may upload for any registered terminal.
    static let terminalCallerPrefix = "terminal."

    static func authorize(terminalID: String, identity: CallerIdentity) throws {
        guard identity.caller.hasPrefix(terminalCallerPrefix) else { return }
        guard identity.caller.dropFirst(terminalCallerPrefix.count) == terminalID else {
            throw ServiceError.permissionDenied(
                reason: "TERMINAL_MISMATCH", "this token belongs to another terminal; a terminal uploads only as itself")
        }
    }

    private func validator() async throws -> @Sendable (Kangyi_Checkpoint_V1_VehicleLog) -> Result<NewVehicleLog, ServiceError> {
        let reference = try await reference.get()
        let retentionDays = retentionDays
        return { VehicleLog.validate($0, reference: reference, retentionDays: retentionDays) }
    }

    // MARK: ingest

    public func uploadVehicleLogs(
        request: RPCAsyncSequence<Kangyi_Checkpoint_V1_UploadVehicleLogsRequest, any Error>,
        response: RPCWriter<Kangyi_Checkpoint_V1_UploadVehicleLogsResponse>,
        context: ServerContext
    ) async throws {
        let identity = CallerIdentity.current
        try await UploadStream(
            store: logs, shared: uploads, validate: try await validator(),
            authorize: { try Self.authorize(terminalID: $0, identity: identity) }
        ).run(requests: request, response: response)
    }

    public func recordVehicleLog(
        request: Kangyi_Checkpoint_V1_RecordVehicleLogRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_RecordVehicleLogResponse {
        let identity = CallerIdentity.current
        let log = try await validator()(request.log).get()
        try Self.authorize(terminalID: log.terminalID, identity: identity)
        switch try await UploadStream.ingest([log], into: logs)[0] {
        case .stored(let stored):
            return .with { $0.vehicleLog = stored.wire(for: identity) }
        case .replayed(let key):
            guard let stored = try await logs.log(at: key) else { throw ServiceError.notFound("vehicle log") }
            return .with {
                $0.vehicleLog = stored.wire(for: identity)
                $0.replayed = true
            }
        case .conflict:
            throw ServiceError.alreadyExists(
                reason: "SEQUENCE_REUSED", "terminal \(log.terminalID) already stored another log under sequence \(log.sequence)")
        case .rejected(let violations):
            throw ServiceError.invalidArgument(violations)
        }
    }

    // MARK: queries

    public func listVehicleLogs(
        request: Kangyi_Checkpoint_V1_ListVehicleLogsRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_ListVehicleLogsResponse {
        var violations = FieldViolations()
        var filter = VehicleLogFilter()
        if !request.checkpoint.isEmpty { filter.checkpoint = request.checkpoint }
        if !request.plate.isEmpty { filter.plate = Self.plate(request.plate, field: "plate", &violations) }
        if request.hasObserved {
            if request.observed.hasStart { filter.observedFrom = violations.checkTimestamp(request.observed.start, field: "observed.start") }
            if request.observed.hasEnd { filter.observedBefore = violations.checkTimestamp(request.observed.end, field: "observed.end") }
        }
        filter.flaggedOnly = request.flaggedOnly
        switch request.flag {
        case .unspecified: break
        case .fever: filter.flag = .fever
        case .redCode: filter.flag = .redCode
        case .yellowCode: filter.flag = .yellowCode
        case .riskArea: filter.flag = .riskArea
        case .watchedPlate: filter.flag = .watchedPlate
        case .UNRECOGNIZED: violations.add("flag", "INVALID_FLAG", "a known flag")
        }
        if !request.originProvince.isEmpty {
            if RegionCode.isValid(request.originProvince) {
                filter.originProvince = RegionCode.province(of: request.originProvince)
            } else {
                violations.add("origin_province", "INVALID_ORIGIN", "a province administrative code, e.g. 420000")
            }
        }
        try violations.throwIfAny()
        let pageSize = try PageToken.pageSize(request.pageSize)
        let after = try PageToken.decode(request.pageToken, as: VehicleLogPageKey.self, fingerprint: filter.fingerprint)
        let rows = try await logs.list(filter, after: after, limit: pageSize + 1)
        let page = rows.prefix(pageSize)
        let identity = CallerIdentity.current
        return .with {
            $0.vehicleLogs = page.map { $0.wire(for: identity) }
            if rows.count > pageSize, let last = page.last {
                $0.nextPageToken = PageToken.encode(VehicleLogPageKey(last), fingerprint: filter.fingerprint)
            }
        }
    }

    public func getPlateHistory(
        request: Kangyi_Checkpoint_V1_GetPlateHistoryRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_GetPlateHistoryResponse {
        var violations = FieldViolations()
        let plate = Self.plate(request.plate, field: "plate", &violations)
        if !(0...1000).contains(request.limit) { violations.add("limit", "LIMIT_OUT_OF_RANGE", "0-1000 (0 means 100)") }
        try violations.throwIfAny()
        guard let plate else { throw ServiceError.invalidArgument(violations.all) }
        let limit = request.limit == 0 ? 100 : Int(request.limit)
        let passages = try await logs.list(VehicleLogFilter(plate: plate), after: nil, limit: limit)
        let identity = CallerIdentity.current
        return .with {
            $0.plate = plate
            $0.passages = passages.map { $0.wire(for: identity) }
        }
    }

    public func watchFlaggedVehicles(
        request: Kangyi_Checkpoint_V1_WatchFlaggedVehiclesRequest,
        response: RPCWriter<Kangyi_Checkpoint_V1_WatchFlaggedVehiclesResponse>,
        context: ServerContext
    ) async throws {
        let checkpoint = request.checkpoint.isEmpty ? nil : request.checkpoint
        let identity = CallerIdentity.current
        try await followFeed(
            from: try FeedCursor.parse(request.cursor), context: context,
            next: { try await logs.flagged(after: $0, checkpoint: checkpoint, limit: $1).map { (row: $0.0, cursor: $0.1) } },
            write: { log, position in
                try await response.write(.with {
                    $0.vehicleLog = log.wire(for: identity)
                    $0.cursor = position.token
                })
            })
    }

    public func getCheckpointStatistics(
        request: Kangyi_Checkpoint_V1_GetCheckpointStatisticsRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_GetCheckpointStatisticsResponse {
        var violations = FieldViolations()
        let observed = violations.checkRequiredRange(request.observed, has: request.hasObserved, field: "observed", maxDays: 93)
        let granularity: String?
        switch request.granularity {
        case .unspecified, .hour: granularity = "hour"
        case .day: granularity = "day"
        case .UNRECOGNIZED:
            granularity = nil
            violations.add("granularity", "INVALID_GRANULARITY", "HOUR or DAY")
        }
        try violations.throwIfAny()
        guard let observed, let granularity else { throw ServiceError.invalidArgument(violations.all) }
        let rows = try await logs.statistics(StatisticsRequest(
            checkpoint: request.checkpoint.isEmpty ? nil : request.checkpoint, from: observed.start, before: observed.end,
            granularity: granularity, byOriginProvince: request.byOriginProvince))
        return .with { $0.rows = rows.map(\.wire) }
    }

    public func exportVehicleLogs(
        request: Kangyi_Checkpoint_V1_ExportVehicleLogsRequest,
        response: RPCWriter<Kangyi_Checkpoint_V1_ExportVehicleLogsResponse>,
        context: ServerContext
    ) async throws {
        var violations = FieldViolations()
        let observed = violations.checkRequiredRange(request.observed, has: request.hasObserved, field: "observed", maxDays: nil)
        try violations.throwIfAny()
        guard let (from, before) = observed else { throw ServiceError.invalidArgument(violations.all) }
        let checkpoint = request.checkpoint.isEmpty ? nil : request.checkpoint
        let identity = CallerIdentity.current
        // One page in memory at a time; each page is a new query, so no connection is held between them.
        var after: VehicleLogPageKey?
        while !context.cancellation.isCancelled {
            let page = try await logs.export(from: from, before: before, checkpoint: checkpoint, after: after, limit: Self.exportChunk)
            if page.isEmpty { break }
            try await response.write(.with { $0.vehicleLogs = page.map { $0.wire(for: identity) } })
            if page.count < Self.exportChunk { break }
            after = VehicleLogPageKey(page[page.count - 1])
        }
    }

    static let exportChunk = 500

    // MARK: administration

    public func listCheckpoints(
        request: Kangyi_Checkpoint_V1_ListCheckpointsRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_ListCheckpointsResponse {
        let checkpoints = try await administration.checkpoints()
        return .with { $0.checkpoints = checkpoints.map(\.wire) }
    }

    public func setCheckpoint(
        request: Kangyi_Checkpoint_V1_SetCheckpointRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_SetCheckpointResponse {
        let wire = request.checkpoint
        var violations = FieldViolations()
        if !VehicleLog.isTerminalID(wire.code) {
            violations.add("checkpoint.code", "INVALID_CODE", "required: letters, digits, '-' and '_', 1-64 characters")
        }
        violations.checkText(wire.name, field: "checkpoint.name", required: true, limit: 200)
        violations.checkDistrict(wire.district, in: try await reference.get(), required: true, field: "checkpoint.district")
        violations.checkText(wire.road, field: "checkpoint.road", required: false, limit: 200)
        if wire.hasLocation, !((-90...90).contains(wire.location.latitude) && (-180...180).contains(wire.location.longitude)) {
            violations.add("checkpoint.location", "INVALID_LOCATION", "latitude -90..90 and longitude -180..180")
        }
        try violations.throwIfAny()
        let record = AdministrationStore.CheckpointRecord(
            code: wire.code, name: wire.name.trimmingCharacters(in: .whitespacesAndNewlines), district: wire.district,
            road: wire.road, latitude: wire.hasLocation ? wire.location.latitude : nil,
            longitude: wire.hasLocation ? wire.location.longitude : nil)
        try await administration.setCheckpoint(record)
        return .with { $0.checkpoint = record.wire }
    }

    public func registerTerminal(
        request: Kangyi_Checkpoint_V1_RegisterTerminalRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_RegisterTerminalResponse {
        var violations = FieldViolations()
        if !VehicleLog.isTerminalID(request.terminalID) {
            violations.add("terminal_id", "INVALID_TERMINAL_ID", "required: letters, digits, '-' and '_', 1-64 characters")
        }
        if request.checkpoint.isEmpty { violations.add("checkpoint", "MISSING_CHECKPOINT", "required: a checkpoint code") }
        violations.checkText(request.label, field: "label", required: false, limit: 200)
        try violations.throwIfAny()
        guard try await administration.checkpointExists(request.checkpoint) else {
            throw ServiceError.invalidArgument(field: "checkpoint", reason: "UNKNOWN_CHECKPOINT", "no checkpoint has this code")
        }
        let terminal = try await administration.register(
            terminalID: request.terminalID, checkpoint: request.checkpoint, label: request.label)
        return .with { $0.terminal = terminal.wire }
    }

    public func listTerminals(
        request: Kangyi_Checkpoint_V1_ListTerminalsRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_ListTerminalsResponse {
        let terminals = try await administration.terminals(
            checkpoint: request.checkpoint.isEmpty ? nil : request.checkpoint, includeRetired: request.includeRetired)
        return .with { $0.terminals = terminals.map(\.wire) }
    }

    public func retireTerminal(
        request: Kangyi_Checkpoint_V1_RetireTerminalRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_RetireTerminalResponse {
        guard VehicleLog.isTerminalID(request.terminalID) else {
            throw ServiceError.invalidArgument(
                field: "terminal_id", reason: "INVALID_TERMINAL_ID", "required: letters, digits, '-' and '_', 1-64 characters")
        }
        guard let terminal = try await administration.retire(terminalID: request.terminalID) else {
            throw ServiceError.notFound("terminal")
        }
        return .with { $0.terminal = terminal.wire }
    }

    public func setRiskArea(
        request: Kangyi_Checkpoint_V1_SetRiskAreaRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_SetRiskAreaResponse {
        let wire = request.riskArea
        var violations = FieldViolations()
        if !RegionCode.isValid(wire.code) || !wire.code.hasSuffix("00") {
            violations.add("risk_area.code", "INVALID_CODE", "a province (420000) or city (420100) administrative code")
        }
        let level = AdministrationStore.RiskAreaRecord.levels.name(wire.level)
        if level == nil { violations.add("risk_area.level", "INVALID_LEVEL", "required: LOW, MEDIUM or HIGH") }
        var from: Date?
        var until: Date?
        if wire.hasEffective && wire.effective.hasStart {
            from = violations.checkTimestamp(wire.effective.start, field: "risk_area.effective.start")
        } else {
            violations.add("risk_area.effective.start", "MISSING_START", "required: when the area comes into force")
        }
        if wire.effective.hasEnd {
            until = violations.checkTimestamp(wire.effective.end, field: "risk_area.effective.end")
            if let from, let until, until <= from {
                violations.add("risk_area.effective.end", "END_BEFORE_START", "must be after the start")
            }
        }
        violations.checkText(wire.note, field: "risk_area.note", required: false, limit: 500)
        try violations.throwIfAny()
        guard let level, let from else { throw ServiceError.invalidArgument(violations.all) }
        let area = try await administration.setRiskArea(
            .init(code: wire.code, level: level, effectiveFrom: from, effectiveUntil: until, note: wire.note),
            by: CallerIdentity.current.caller)
        return .with { $0.riskArea = area.wire }
    }

    public func listRiskAreas(
        request: Kangyi_Checkpoint_V1_ListRiskAreasRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_ListRiskAreasResponse {
        var violations = FieldViolations()
        let at = request.hasInForceAt ? violations.checkTimestamp(request.inForceAt, field: "in_force_at") : nil
        try violations.throwIfAny()
        let areas = try await administration.riskAreas(inForceAt: at)
        return .with { $0.riskAreas = areas.map(\.wire) }
    }

    public func watchPlate(
        request: Kangyi_Checkpoint_V1_WatchPlateRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_WatchPlateResponse {
        var violations = FieldViolations()
        let plate = Self.plate(request.plate, field: "plate", &violations)
        violations.checkText(request.reason, field: "reason", required: true, limit: 500)
        try violations.throwIfAny()
        guard let plate else { throw ServiceError.invalidArgument(violations.all) }
        let watched = try await administration.watch(plate: plate, reason: request.reason, by: CallerIdentity.current.caller)
        return .with { $0.watchedPlate = watched.wire }
    }

    public func unwatchPlate(
        request: Kangyi_Checkpoint_V1_UnwatchPlateRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_UnwatchPlateResponse {
        var violations = FieldViolations()
        let plate = Self.plate(request.plate, field: "plate", &violations)
        try violations.throwIfAny()
        guard let plate, try await administration.unwatch(plate: plate) else { throw ServiceError.notFound("watched plate") }
        return .init()
    }

    public func listWatchedPlates(
        request: Kangyi_Checkpoint_V1_ListWatchedPlatesRequest, context: ServerContext
    ) async throws -> Kangyi_Checkpoint_V1_ListWatchedPlatesResponse {
        let plates = try await administration.watchedPlates()
        return .with { $0.watchedPlates = plates.map(\.wire) }
    }

    // MARK: helpers

    /// A plate a caller names (any colour: 5 or 6 characters after the letter), normalised.
    static func plate(_ raw: String, field: String, _ violations: inout FieldViolations) -> String? {
        if let plate = Plate.parse(raw, newEnergy: false) ?? Plate.parse(raw, newEnergy: true) { return plate.text }
        violations.add(field, "INVALID_PLATE", "province abbreviation, city letter and 5 or 6 letters or digits (e.g. 豫A12345)")
        return nil
    }

    /// A required [start, end) range, at most `maxDays` long.
}
