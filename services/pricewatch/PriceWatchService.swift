import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// `kangyi.pricewatch.v1.PriceWatchService`: the RPCs, translating between the wire and the stores.
public struct PriceWatchService: Kangyi_Pricewatch_V1_PriceWatchService.SimpleServiceProtocol {
    let committer: GroupCommitter<NewObservation, ObservationOutcome>
    let series: SeriesStore
    let alerts: AlertStore
    let reference: PriceReferenceStore
    let cities: ReferenceDataCache

    static let maximumBatch = 1_000

    // MARK: Observations in

    public func submitPriceObservations(
        request: Kangyi_Pricewatch_V1_SubmitPriceObservationsRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_SubmitPriceObservationsResponse {
        let submitter = try Self.caller()
        guard (1...Self.maximumBatch).contains(request.observations.count) else {
            throw ServiceError.invalidArgument(
                field: "observations", reason: "BATCH_SIZE", "1 to \(Self.maximumBatch) observations per call")
        }
        let outcomes = try await submit(request.observations, submitter: submitter, field: "observations")
        var response = Kangyi_Pricewatch_V1_SubmitPriceObservationsResponse()
        for (index, outcome) in outcomes.enumerated() {
            let result = Self.result(outcome, index: index, observationID: request.observations[index].observationID)
            response.results.append(result)
            switch result.outcome {
            case .stored: response.stored += 1
            case .duplicate: response.duplicates += 1
            default: response.refused += 1
            }
        }
        return response
    }

    public func streamPriceObservations(
        request: RPCAsyncSequence<Kangyi_Pricewatch_V1_StreamPriceObservationsRequest, any Error>, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_StreamPriceObservationsResponse {
        let submitter = try Self.caller()
        var summary = Kangyi_Pricewatch_V1_StreamPriceObservationsResponse()
        // A chunk at a time: the server reads no further until the chunk is committed, so a fast feed
        // is held back by HTTP/2 flow control instead of growing the server's memory.
        var chunk: [Kangyi_Pricewatch_V1_PriceObservation] = []
        var offset = 0
        func flush() async throws {
            let outcomes = try await submit(chunk, submitter: submitter, field: "observation", offset: offset)
            for (position, outcome) in outcomes.enumerated() {
                let result = Self.result(outcome, index: offset + position, observationID: chunk[position].observationID)
                switch result.outcome {
                case .stored: summary.stored += 1
                case .duplicate: summary.duplicates += 1
                default: summary.refused += 1
                }
                if result.outcome == .refused || !result.alerts.isEmpty { summary.results.append(result) }
            }
            offset += chunk.count
            chunk.removeAll(keepingCapacity: true)
        }
        for try await message in request {
            guard message.observations.count <= Self.maximumBatch else {
                throw ServiceError.invalidArgument(
                    field: "observations", reason: "BATCH_SIZE", "at most \(Self.maximumBatch) observations in one message")
            }
            for observation in Self.observations(of: message) {
                chunk.append(observation)
                if chunk.count == Self.maximumBatch { try await flush() }
            }
        }
        if !chunk.isEmpty { try await flush() }
        return summary
    }

    /// The observations a stream's message carries: `observation` when set (or when nothing else is: an
    /// empty message is refused as the observation it does not hold), then `observations`.
    static func observations(of message: Kangyi_Pricewatch_V1_StreamPriceObservationsRequest) -> [Kangyi_Pricewatch_V1_PriceObservation] {
        if message.observations.isEmpty { return [message.observation] }
        return message.hasObservation ? [message.observation] + message.observations : message.observations
    }

    /// Checks each observation and commits the valid ones together; outcomes in order.
    private func submit(
        _ wire: [Kangyi_Pricewatch_V1_PriceObservation], submitter: String, field: String, offset: Int = 0
    ) async throws -> [ObservationOutcome] {
        var outcomes = [ObservationOutcome](repeating: .duplicate, count: wire.count)
        var valid: [(index: Int, observation: NewObservation)] = []
        for index in wire.indices {
            switch NewObservation.check(wire[index], submitter: submitter) {
            case .failure(let refusal):
                outcomes[index] = .refused(refusal.under(field == "observations" ? "observations[\(index)]" : field).violations)
            case .success(let observation): valid.append((index, observation))
            }
        }
        // One ticket for the whole batch: the committer still isolates and refuses items one by one.
        let committed = try await committer.submit(contentsOf: valid.map(\.observation))
        for ((index, _), result) in zip(valid, committed) {
            let outcome = try result.get()
            // The store names fields of the observation; the answer names them in the request.
            if case .refused(let violations) = outcome {
                let prefix = field == "observations" ? "observations[\(index)]" : field
                outcomes[index] = .refused(violations.map { .init(field: "\(prefix).\($0.field)", reason: $0.reason, description: $0.description) })
            } else {
                outcomes[index] = outcome
            }
        }
        return outcomes
    }

    static func result(_ outcome: ObservationOutcome, index: Int, observationID: String) -> Kangyi_Pricewatch_V1_ObservationResult {
        .with {
            $0.index = Int32(index)
            $0.observationID = observationID
            switch outcome {
            case .stored(_, let raised):
                $0.outcome = .stored
                $0.alerts = raised.map(\.wire)
            case .duplicate:
                $0.outcome = .duplicate
            case .refused(let violations):
                $0.outcome = .refused
                $0.violations = violations.map { violation in
                    .with {
                        $0.field = violation.field
                        $0.reason = violation.reason
                        $0.description_p = violation.description
                    }
                }
            }
        }
    }

    // MARK: Analysts

    public func getPriceSeries(
        request: Kangyi_Pricewatch_V1_GetPriceSeriesRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_GetPriceSeriesResponse {
        var violations = FieldViolations()
        try await checkCommodity(request.commodity, required: true, &violations)
        if !request.district.isEmpty && !request.outlet.isEmpty {
            violations.add("outlet", "DISTRICT_OR_OUTLET", "give a district or an outlet, not both")
        }
        violations.checkDistrict(request.district, in: try await cities.get(), required: false)
        let observed = violations.checkRequiredRange(request.observed, has: request.hasObserved, field: "observed", maxDays: 1_096)
        let bucket: String? = switch request.bucket {
        case .unspecified, .day: "day"
        case .week: "week"
        case .month: "month"
        case .UNRECOGNIZED: nil
        }
        if bucket == nil { violations.add("bucket", "INVALID_BUCKET", "DAY, WEEK or MONTH") }
        try violations.throwIfAny()
        guard let observed, let bucket else { throw ServiceError.invalidArgument(violations.all) }
        let points = try await series.series(
            commodity: request.commodity, district: request.district.isEmpty ? nil : request.district,
            outlet: request.outlet.isEmpty ? nil : request.outlet, from: observed.start, before: observed.end, bucket: bucket)
        return .with { $0.points = points.map(\.wire) }
    }

    public func listPriceObservations(
        request: Kangyi_Pricewatch_V1_ListPriceObservationsRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_ListPriceObservationsResponse {
        var violations = FieldViolations()
        var filter = SeriesStore.ObservationFilter()
        violations.checkDistrict(request.district, in: try await cities.get(), required: false)
        if request.source != .unspecified {
            filter.source = PriceWatchNames.sources.name(request.source)
            if filter.source == nil { violations.add("source", "INVALID_SOURCE", "inspector, outlet feed or citizen complaint") }
        }
        if request.observed.hasStart { filter.from = violations.checkTimestamp(request.observed.start, field: "observed.start") }
        if request.observed.hasEnd { filter.before = violations.checkTimestamp(request.observed.end, field: "observed.end") }
        try violations.throwIfAny()
        filter.commodity = request.commodity.isEmpty ? nil : request.commodity
        filter.district = request.district.isEmpty ? nil : request.district
        filter.outlet = request.outlet.isEmpty ? nil : request.outlet
        let pageSize = try PageToken.pageSize(request.pageSize)
        let after = try PageToken.decode(request.pageToken, as: SeriesStore.PageKey.self, fingerprint: filter.fingerprint)
        let rows = try await series.observations(filter, after: after, limit: pageSize + 1)
        let page = rows.prefix(pageSize)
        return .with {
            $0.observations = page.map(\.wire)
            if rows.count > pageSize, let last = page.last {
                $0.nextPageToken = PageToken.encode(
                    SeriesStore.PageKey(
                        observedAt: last.observation.observedAt, submitter: last.observation.submitter,
                        observationID: last.observation.observationID),
                    fingerprint: filter.fingerprint)
            }
        }
    }

    public func getIndicators(
        request: Kangyi_Pricewatch_V1_GetIndicatorsRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_GetIndicatorsResponse {
        var violations = FieldViolations()
        try await checkCommodity(request.commodity, required: true, &violations)
        violations.checkDistrict(request.district, in: try await cities.get(), required: false)
        try violations.throwIfAny()
        let found = try await series.indicators(
            commodity: request.commodity, district: request.district.isEmpty ? nil : request.district)
        return .with { $0.indicators = found.map(\.wire) }
    }

    public func listAlerts(
        request: Kangyi_Pricewatch_V1_ListAlertsRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_ListAlertsResponse {
        var violations = FieldViolations()
        var filter = AlertStore.Filter()
        for (index, status) in request.statuses.enumerated() {
            if let name = PriceWatchNames.statuses.name(status) { filter.statuses.append(name) } else {
                violations.add("statuses[\(index)]", "INVALID_STATUS", "not an alert status")
            }
        }
        for (index, kind) in request.kinds.enumerated() {
            if let name = PriceWatchNames.alertKinds.name(kind) { filter.kinds.append(name) } else {
                violations.add("kinds[\(index)]", "INVALID_KIND", "not an alert kind")
            }
        }
        violations.checkDistrict(request.district, in: try await cities.get(), required: false)
        try violations.throwIfAny()
        filter.commodity = request.commodity.isEmpty ? nil : request.commodity
        filter.district = request.district.isEmpty ? nil : request.district
        filter.outlet = request.outlet.isEmpty ? nil : request.outlet
        let pageSize = try PageToken.pageSize(request.pageSize)
        let after = try PageToken.decode(request.pageToken, as: AlertStore.PageKey.self, fingerprint: filter.fingerprint)
        let rows = try await alerts.list(filter, after: after, limit: pageSize + 1)
        let page = rows.prefix(pageSize)
        return .with {
            $0.alerts = page.map(\.wire)
            if rows.count > pageSize, let last = page.last {
                $0.nextPageToken = PageToken.encode(AlertStore.PageKey(createdAt: last.createdAt, id: last.id), fingerprint: filter.fingerprint)
            }
        }
    }

    public func watchAlerts(
        request: Kangyi_Pricewatch_V1_WatchAlertsRequest, response: RPCWriter<Kangyi_Pricewatch_V1_WatchAlertsResponse>,
        context: ServerContext
    ) async throws {
        var violations = FieldViolations()
        violations.checkDistrict(request.district, in: try await cities.get(), required: false)
        try violations.throwIfAny()
        let district = request.district.isEmpty ? nil : request.district
        try await followFeed(
            from: try FeedCursor.parse(request.cursor), context: context,
            next: { try await alerts.feed(after: $0, district: district, limit: $1).map { (row: $0.0, cursor: $0.1) } },
            write: { alert, position in
                try await response.write(.with {
                    $0.alert = alert.wire
                    $0.cursor = position.token
                })
            })
    }

    public func getOutletRecord(
        request: Kangyi_Pricewatch_V1_GetOutletRecordRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_GetOutletRecordResponse {
        guard !request.outlet.isEmpty else {
            throw ServiceError.invalidArgument(field: "outlet", reason: "MISSING_OUTLET", "required: an outlet code")
        }
        guard let outlet = try await reference.outlet(request.outlet) else { throw ServiceError.notFound("outlet") }
        let observations = try await series.observations(.init(outlet: outlet.code), after: nil, limit: 200)
        let raised = try await alerts.list(.init(outlet: outlet.code), after: nil, limit: 200)
        let history = try await alerts.history(of: raised.map(\.id))
        return .with {
            $0.outlet = outlet.wire
            $0.observations = observations.map(\.wire)
            $0.alerts = raised.map { alert in
                .with {
                    $0.alert = alert.wire
                    $0.history = (history[alert.id] ?? []).map(\.wire)
                }
            }
        }
    }

    // MARK: Enforcement

    public func updateAlert(
        request: Kangyi_Pricewatch_V1_UpdateAlertRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_UpdateAlertResponse {
        let actor = try Self.actor()
        var violations = FieldViolations()
        let id = UUID(uuidString: request.alertID)
        if id == nil { violations.add("alert_id", "INVALID_ALERT_ID", "required: an alert id") }
        violations.checkRequestID(request.requestID, field: "request_id")
        var move: AlertMove?
        switch request.action {
        case .acknowledge:
            move = .acknowledge
        case .dismiss:
            violations.checkText(request.reason, field: "reason", required: true, limit: 1000)
            move = .dismiss(reason: request.reason)
        case .refer:
            violations.checkText(request.caseNumber, field: "case_number", required: true, limit: 64)
            move = .refer(caseNumber: request.caseNumber)
        case .recordOutcome:
            let outcome = PriceWatchNames.outcomes.name(request.outcome)
            if outcome == nil { violations.add("outcome", "INVALID_OUTCOME", "required: warning, fine or no violation") }
            if outcome == "fine" && !(1...NewObservation.maximumFen).contains(request.fineFen) {
                violations.add("fine_fen", "INVALID_FINE", "a fine needs its amount: 1 to \(NewObservation.maximumFen) fen")
            } else if outcome != "fine" && request.fineFen != 0 {
                violations.add("fine_fen", "ONLY_WITH_FINE", "only for a fine")
            }
            move = outcome.map { .recordOutcome(outcome: $0, fineFen: $0 == "fine" ? request.fineFen : nil) }
        default:
            violations.add("action", "INVALID_ACTION", "acknowledge, dismiss, refer or record outcome")
        }
        try violations.throwIfAny()
        guard let id, let move else { throw ServiceError.invalidArgument(violations.all) }
        let (alert, replayed) = try await alerts.update(id, move, requestID: request.requestID, by: actor)
        return .with {
            $0.alert = alert.wire
            $0.replayed = replayed
        }
    }

    public func setPriceControl(
        request: Kangyi_Pricewatch_V1_SetPriceControlRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_SetPriceControlResponse {
        let actor = try Self.actor()
        let wire = request.control
        var violations = FieldViolations()
        let kind = PriceWatchNames.controlKinds.name(wire.kind)
        if kind == nil { violations.add("control.kind", "INVALID_KIND", "ceiling, markup cap or freeze") }
        let commodityClass = wire.class == .unspecified ? nil : PriceWatchNames.classes.name(wire.class)
        switch (wire.commodity.isEmpty, wire.class == .unspecified) {
        case (true, true), (false, false):
            violations.add("control.commodity", "COMMODITY_OR_CLASS", "give exactly one of commodity and class")
        case (false, true): try await checkCommodity(wire.commodity, required: true, &violations, field: "control.commodity")
        case (true, false):
            if commodityClass == nil { violations.add("control.class", "INVALID_CLASS", "not a commodity class") }
        }
        violations.checkDistrict(wire.district, in: try await cities.get(), required: false, field: "control.district")
        var basisPoints: Int64?
        if kind == "ceiling" && !(1...NewObservation.maximumFen).contains(wire.ceilingFen) {
            violations.add("control.ceiling_fen", "INVALID_CEILING", "a ceiling needs its price: 1 to \(NewObservation.maximumFen) fen")
        } else if kind != "ceiling" && wire.ceilingFen != 0 {
            violations.add("control.ceiling_fen", "ONLY_FOR_CEILING", "only for a ceiling")
        }
        if kind == "markup_cap" {
            let scaled = (wire.maxMarkup * 10_000).rounded()
            if !(0...1_000_000).contains(scaled) || !wire.maxMarkup.isFinite {
                violations.add("control.max_markup", "INVALID_MARKUP", "a ratio from 0 to 100 (0.15 = 15 %)")
            } else {
                basisPoints = Int64(scaled)
            }
        } else if wire.maxMarkup != 0 {
            violations.add("control.max_markup", "ONLY_FOR_MARKUP_CAP", "only for a markup cap")
        }
        let start = wire.effective.hasStart ? violations.checkTimestamp(wire.effective.start, field: "control.effective.start") : Date()
        let end = wire.effective.hasEnd ? violations.checkTimestamp(wire.effective.end, field: "control.effective.end") : nil
        if let start, let end, end <= start {
            violations.add("control.effective.end", "END_BEFORE_START", "must be after the start")
        }
        violations.checkText(wire.note, field: "control.note", required: false, limit: 1000)
        violations.checkRequestID(request.requestID, field: "request_id")
        try violations.throwIfAny()
        guard let kind, let start else { throw ServiceError.invalidArgument(violations.all) }
        let (control, replayed) = try await reference.insert(.init(
            id: UUID(), kind: kind, commodity: wire.commodity.isEmpty ? nil : wire.commodity, commodityClass: commodityClass,
            district: wire.district.isEmpty ? nil : wire.district, ceilingFen: kind == "ceiling" ? wire.ceilingFen : nil,
            maxMarkupBasisPoints: basisPoints, effectiveFrom: start, effectiveUntil: end, note: wire.note, setBy: actor.caller,
            setByDepartment: actor.department), requestID: request.requestID)
        return .with {
            $0.control = control.wire
            $0.replayed = replayed
        }
    }

    public func endPriceControl(
        request: Kangyi_Pricewatch_V1_EndPriceControlRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_EndPriceControlResponse {
        _ = try Self.actor()
        var violations = FieldViolations()
        let id = UUID(uuidString: request.id)
        if id == nil { violations.add("id", "INVALID_ID", "required: a price control id") }
        let end = request.hasEnd ? violations.checkTimestamp(request.end, field: "end") : Date()
        try violations.throwIfAny()
        guard let id, let end else { throw ServiceError.invalidArgument(violations.all) }
        let control = try await reference.end(id, at: end)
        return .with { $0.control = control.wire }
    }

    public func listPriceControls(
        request: Kangyi_Pricewatch_V1_ListPriceControlsRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_ListPriceControlsResponse {
        let controls = try await reference.controls(includeEnded: request.includeEnded)
        return .with { $0.controls = controls.map(\.wire) }
    }

    public func setBaseline(
        request: Kangyi_Pricewatch_V1_SetBaselineRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_SetBaselineResponse {
        let actor = try Self.actor()
        var violations = FieldViolations()
        try await checkCommodity(request.commodity, required: true, &violations)
        violations.checkDistrict(request.district, in: try await cities.get(), required: true)
        var window: (start: Date, end: Date)?
        switch (request.priceFen != 0, request.hasComputeFrom) {
        case (true, false):
            if !(1...NewObservation.maximumFen).contains(request.priceFen) {
                violations.add("price_fen", "PRICE_OUT_OF_RANGE", "1 to \(NewObservation.maximumFen) fen")
            }
        case (false, true):
            window = violations.checkRequiredRange(request.computeFrom, has: true, field: "compute_from", maxDays: 366)
        default:
            violations.add("price_fen", "PRICE_OR_WINDOW", "give exactly one of price_fen and compute_from")
        }
        try violations.throwIfAny()
        let baseline = try await reference.setBaseline(
            commodity: request.commodity, district: request.district, priceFen: window == nil ? request.priceFen : nil,
            window: window, by: actor)
        return .with { $0.baseline = baseline.wire }
    }

    public func listBaselines(
        request: Kangyi_Pricewatch_V1_ListBaselinesRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_ListBaselinesResponse {
        let found = try await reference.baselines(
            commodity: request.commodity.isEmpty ? nil : request.commodity, district: request.district.isEmpty ? nil : request.district)
        return .with { $0.baselines = found.map(\.wire) }
    }

    public func listCommodities(
        request: Kangyi_Pricewatch_V1_ListCommoditiesRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_ListCommoditiesResponse {
        let commodities = try await reference.commodities()
        return .with { $0.commodities = commodities.map(\.wire) }
    }

    public func setCommodity(
        request: Kangyi_Pricewatch_V1_SetCommodityRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_SetCommodityResponse {
        _ = try Self.actor()
        let wire = request.commodity
        var violations = FieldViolations()
        if wire.code.range(of: "^[a-z0-9_]{1,64}$", options: .regularExpression) == nil {
            violations.add("commodity.code", "INVALID_CODE", "1-64 of a-z, 0-9 and _")
        }
        violations.checkText(wire.name, field: "commodity.name", required: true, limit: 100)
        violations.checkText(wire.nameEn, field: "commodity.name_en", required: false, limit: 100)
        let commodityClass = PriceWatchNames.classes.name(wire.class)
        if commodityClass == nil { violations.add("commodity.class", "INVALID_CLASS", "required: a commodity class") }
        let unit = PriceWatchNames.units.name(wire.baseUnit)
        if unit == nil { violations.add("commodity.base_unit", "INVALID_UNIT", "required: gram, millilitre or piece") }
        if !(1...1_000_000).contains(wire.unitQuantity) {
            violations.add("commodity.unit_quantity", "INVALID_QUANTITY", "1 to 1,000,000 of the base unit")
        }
        try violations.throwIfAny()
        guard let commodityClass, let unit else { throw ServiceError.invalidArgument(violations.all) }
        let stored = try await reference.set(PriceReferenceStore.Commodity(
            code: wire.code, name: wire.name, nameEn: wire.nameEn, commodityClass: commodityClass, baseUnit: unit,
            unitQuantity: wire.unitQuantity, epidemicRelated: wire.epidemicRelated))
        return .with { $0.commodity = stored.wire }
    }

    public func listOutlets(
        request: Kangyi_Pricewatch_V1_ListOutletsRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_ListOutletsResponse {
        var violations = FieldViolations()
        violations.checkDistrict(request.district, in: try await cities.get(), required: false)
        let kind = request.kind == .unspecified ? nil : PriceWatchNames.outletKinds.name(request.kind)
        if request.kind != .unspecified && kind == nil { violations.add("kind", "INVALID_KIND", "not an outlet kind") }
        try violations.throwIfAny()
        let fingerprint = "\(request.district)|\(kind ?? "")"
        let pageSize = try PageToken.pageSize(request.pageSize)
        let after = try PageToken.decode(request.pageToken, as: String.self, fingerprint: fingerprint)
        let rows = try await reference.outlets(
            district: request.district.isEmpty ? nil : request.district, kind: kind, after: after, limit: pageSize + 1)
        let page = rows.prefix(pageSize)
        return .with {
            $0.outlets = page.map(\.wire)
            if rows.count > pageSize, let last = page.last { $0.nextPageToken = PageToken.encode(last.code, fingerprint: fingerprint) }
        }
    }

    public func setOutlet(
        request: Kangyi_Pricewatch_V1_SetOutletRequest, context: ServerContext
    ) async throws -> Kangyi_Pricewatch_V1_SetOutletResponse {
        _ = try Self.actor()
        let wire = request.outlet
        var violations = FieldViolations()
        if wire.code.range(of: "^[A-Za-z0-9_-]{1,64}$", options: .regularExpression) == nil {
            violations.add("outlet.code", "INVALID_CODE", "1-64 of A-Z, a-z, 0-9, _ and -")
        }
        violations.checkText(wire.name, field: "outlet.name", required: true, limit: 200)
        violations.checkText(wire.licenceNumber, field: "outlet.licence_number", required: false, limit: 64)
        let kind = PriceWatchNames.outletKinds.name(wire.kind)
        if kind == nil { violations.add("outlet.kind", "INVALID_KIND", "required: shop, pharmacy, supermarket or wet-market stall") }
        violations.checkDistrict(wire.district, in: try await cities.get(), required: true, field: "outlet.district")
        try violations.throwIfAny()
        guard let kind else { throw ServiceError.invalidArgument(violations.all) }
        let stored = try await reference.set(PriceReferenceStore.Outlet(
            code: wire.code, name: wire.name, kind: kind, district: wire.district, licenceNumber: wire.licenceNumber))
        return .with { $0.outlet = stored.wire }
    }

    // MARK: Checks

    /// The caller the gateway vouched for: observations are keyed by it and changes attributed to it.
    static func actor() throws -> CallerIdentity {
        try CallerIdentity.vouched(reason: "CALLER_IDENTITY_REQUIRED", "price-watch writes", need: "a caller identity")
    }

    static func caller() throws -> String { try actor().caller }

    private func checkCommodity(_ code: String, required: Bool, _ violations: inout FieldViolations, field: String = "commodity")
        async throws
    {
        if code.isEmpty {
            if required { violations.add(field, "MISSING_COMMODITY", "required: a commodity code") }
        } else if try await reference.commodity(code) == nil {
            violations.add(field, "UNKNOWN_COMMODITY", "no commodity has this code")
        }
    }
}
