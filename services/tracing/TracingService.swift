import Foundation
import GRPCCore
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// `kangyi.tracing.v1.TracingService`: the RPCs, translating between the wire and the stores. Persons
/// are answered masked unless the caller holds pii.read and gives a reason; every unmasked answer is
/// recorded in the access log before it is sent.
public struct TracingService: Kangyi_Tracing_V1_TracingService.SimpleServiceProtocol {
    let tasks: TaskStore
    let reference: ReferenceDataCache

    var persons: PersonStore { tasks.persons }

    // MARK: Cases and contacts

    public func createCase(
        request: Kangyi_Tracing_V1_CreateCaseRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_CreateCaseResponse {
        let actor = try Self.actor()
        let data = try await reference.get()
        var violations = FieldViolations()
        violations.checkRequestID(request.requestID, field: "request_id")
        let person = PersonDetails.check(
            request.indexPerson, field: "index_person", reachable: false, reference: data, &violations)
        if !request.hasIndexPerson || person.isEmpty {
            violations.add("index_person", "MISSING_INDEX_PERSON", "required: at least a name, phone or ID number")
        }
        let classification = Self.classification(request.classification, field: "classification", &violations)
        let onset = Self.pastDay(request.onsetDate, field: "onset_date", required: false, &violations)
        violations.checkText(request.source, field: "source", required: false, limit: 200)
        violations.checkDistrict(request.district, in: data, required: false)
        try violations.throwIfAny()
        let (record, replayed) = try await tasks.createCase(
            .init(
                requestID: request.requestID, person: person, classification: classification ?? "suspected",
                onsetDate: onset, source: request.source, district: request.district.isEmpty ? nil : request.district),
            by: actor)
        return .with {
            $0.case = record.wire
            $0.replayed = replayed
        }
    }

    public func addContacts(
        request: Kangyi_Tracing_V1_AddContactsRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_AddContactsResponse {
        _ = try Self.actor()
        var violations = FieldViolations()
        let caseID = Self.uuid(request.caseID, field: "case_id", &violations)
        if request.contacts.isEmpty {
            violations.add("contacts", "MISSING_CONTACTS", "required: 1 to \(Self.maximumContacts) contacts")
        } else if request.contacts.count > Self.maximumContacts {
            violations.add("contacts", "TOO_MANY_CONTACTS", "at most \(Self.maximumContacts) per call")
        }
        let contacts = try await checkContacts(request.contacts, field: "contacts", &violations)
        try violations.throwIfAny()
        guard let caseID else { throw ServiceError.invalidArgument(violations.all) }
        let added = try await tasks.addContacts(to: caseID, contacts)
        return .with { $0.contacts = added.map(\.wire) }
    }

    static let maximumContacts = 500

    private func checkContacts(_ wire: [Kangyi_Tracing_V1_Contact], field: String, _ violations: inout FieldViolations)
        async throws -> [TaskStore.NewContact]
    {
        guard !wire.isEmpty else { return [] }
        let data = try await reference.get()
        return wire.prefix(Self.maximumContacts).enumerated().map { index, contact in
            let path = "\(field)[\(index)]"
            let person = PersonDetails.check(
                contact.person, field: "\(path).person", reachable: true, reference: data, &violations)
            let relation = TracingNames.relations.name(contact.relation)
            if relation == nil {
                violations.add("\(path).relation", "INVALID_RELATION", "household, close, casual or co-traveller")
            }
            let exposure = Self.pastDay(contact.lastExposureDate, field: "\(path).last_exposure_date", required: true, &violations)
            return TaskStore.NewContact(person: person, relation: relation ?? "", lastExposure: exposure ?? "")
        }
    }

    // MARK: The queue

    public func claimNextCall(
        request: Kangyi_Tracing_V1_ClaimNextCallRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_ClaimNextCallResponse {
        let actor = try Self.actor()
        var violations = FieldViolations()
        violations.checkDistrict(request.district, in: try await reference.get(), required: false)
        let lease = violations.checkLease(request.lease, has: request.hasLease, standard: Self.defaultLease, maximum: Self.maximumLease)
        let unmasked = Self.unmasked(request.reason, &violations)
        try violations.throwIfAny()
        guard
            let task = try await tasks.claimNext(
                actor: actor.caller, district: request.district.isEmpty ? nil : request.district, lease: lease)
        else { return .init() }
        let shown = try await show([task], reason: request.reason, unmasked: unmasked, method: "ClaimNextCall")
        return .with { $0.task = shown[0] }
    }

    static let defaultLease: Duration = .seconds(600)
    static let maximumLease: Duration = .seconds(7200)

    public func releaseCall(
        request: Kangyi_Tracing_V1_ReleaseCallRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_ReleaseCallResponse {
        let actor = try Self.actor()
        let id = try Self.taskID(request.taskID)
        let task = try await tasks.release(taskID: id, actor: actor.caller)
        return .with { $0.task = task.wire(person: nil, unmasked: false) }
    }

    // MARK: Calls and closing

    public func recordCallAttempt(
        request: Kangyi_Tracing_V1_RecordCallAttemptRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_RecordCallAttemptResponse {
        let actor = try Self.actor()
        var violations = FieldViolations()
        let taskID = Self.uuid(request.taskID, field: "task_id", &violations)
        violations.checkRequestID(request.requestID, field: "request_id")
        let outcome = TracingNames.outcomes.name(request.outcome)
        if outcome == nil {
            violations.add("outcome", "INVALID_OUTCOME", "reached, no answer, busy, wrong number, refused or not in service")
        }
        let reached = outcome == "reached"
        var symptoms: [String] = []
        for (index, symptom) in request.symptoms.enumerated() {
            if let name = TracingNames.symptoms.name(symptom) { symptoms.append(name) } else {
                violations.add("symptoms[\(index)]", "INVALID_SYMPTOM", "not a known symptom")
            }
        }
        let temperature = Int(request.temperatureDecidegrees)
        if temperature != 0 && !(340...430).contains(temperature) {
            violations.add("temperature_decidegrees", "TEMPERATURE_OUT_OF_RANGE", "34.0-43.0 °C in tenths (365 = 36.5 °C), or 0")
        }
        let quarantine = request.quarantine == .unspecified ? nil : TracingNames.quarantines.name(request.quarantine)
        if request.quarantine != .unspecified && quarantine == nil {
            violations.add("quarantine", "INVALID_QUARANTINE", "home, designated facility, hospital or none")
        }
        violations.checkText(request.quarantineLocation, field: "quarantine_location", required: false, limit: 500)
        violations.checkText(request.note, field: "note", required: false, limit: 2000)
        let named = try await checkContacts(request.namedContacts, field: "named_contacts", &violations)
        if request.namedContacts.count > Self.maximumContacts {
            violations.add("named_contacts", "TOO_MANY_CONTACTS", "at most \(Self.maximumContacts) per call")
        }
        let nextFollowUp = request.hasNextFollowUp
            ? violations.checkTimestamp(request.nextFollowUp, field: "next_follow_up") : nil
        if let nextFollowUp, nextFollowUp <= Date() {
            violations.add("next_follow_up", "NOT_IN_FUTURE", "must be later than now")
        }
        if !reached {
            // What only a conversation can tell is refused on an unanswered call, rather than dropped.
            let onlyWhenReached: [(Bool, String)] = [
                (!symptoms.isEmpty, "symptoms"), (temperature != 0, "temperature_decidegrees"), (quarantine != nil, "quarantine"),
                (!request.quarantineLocation.isEmpty, "quarantine_location"), (!named.isEmpty, "named_contacts"),
                (request.hasNextFollowUp, "next_follow_up"),
            ]
            for (present, field) in onlyWhenReached where present && outcome != nil {
                violations.add(field, "ONLY_WHEN_REACHED", "only recorded when the person was reached")
            }
        }
        try violations.throwIfAny()
        guard let taskID, let outcome else { throw ServiceError.invalidArgument(violations.all) }
        let recorded = try await tasks.record(
            .init(
                taskID: taskID, requestID: request.requestID, outcome: outcome, symptoms: symptoms,
                temperature: temperature == 0 ? nil : temperature, quarantine: quarantine,
                quarantineLocation: request.quarantineLocation.isEmpty ? nil : request.quarantineLocation,
                namedContacts: named, nextFollowUp: nextFollowUp, note: request.note.isEmpty ? nil : request.note),
            by: actor)
        return .with {
            $0.task = recorded.task.wire(person: nil, unmasked: false)
            // The investigator who wrote the note and place reads them back as written.
            $0.attempt = recorded.attempt.wire(unmasked: true)
            $0.addedContacts = recorded.added.map(\.wire)
            $0.replayed = recorded.replayed
        }
    }

    public func closeTask(
        request: Kangyi_Tracing_V1_CloseTaskRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_CloseTaskResponse {
        let actor = try Self.actor()
        var violations = FieldViolations()
        let taskID = Self.uuid(request.taskID, field: "task_id", &violations)
        violations.checkRequestID(request.requestID, field: "request_id")
        let reason = TracingNames.closeReasons.name(request.reason)
        if reason == nil {
            violations.add("reason", "INVALID_CLOSE_REASON", "quarantine completed, converted to case or lost to follow-up")
        }
        var classification: String?
        var onset: String?
        if reason == "converted_to_case" {
            classification = Self.classification(request.classification, field: "classification", &violations)
            onset = Self.pastDay(request.onsetDate, field: "onset_date", required: false, &violations)
        } else if request.classification != .unspecified || !request.onsetDate.isEmpty {
            violations.add(
                request.classification != .unspecified ? "classification" : "onset_date", "ONLY_WHEN_CONVERTED",
                "only given when the task is closed as converted to a case")
        }
        try violations.throwIfAny()
        guard let taskID, let reason else { throw ServiceError.invalidArgument(violations.all) }
        let (task, converted, replayed) = try await tasks.close(
            .init(taskID: taskID, requestID: request.requestID, reason: reason, classification: classification, onsetDate: onset),
            by: actor)
        return .with {
            $0.task = task.wire(person: nil, unmasked: false)
            if let converted { $0.case = converted.wire }
            $0.replayed = replayed
        }
    }

    // MARK: Reads

    public func getTask(
        request: Kangyi_Tracing_V1_GetTaskRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_GetTaskResponse {
        var violations = FieldViolations()
        let id = Self.uuid(request.taskID, field: "task_id", &violations)
        let unmasked = Self.unmasked(request.reason, &violations)
        try violations.throwIfAny()
        guard let id, let task = try await tasks.fetch(id) else { throw ServiceError.notFound("task") }
        let attempts = try await tasks.attempts(of: id)
        let shown = try await show([task], reason: request.reason, unmasked: unmasked, method: "GetTask")
        return .with {
            $0.task = shown[0]
            $0.attempts = attempts.map { $0.wire(unmasked: unmasked) }
        }
    }

    public func getPerson(
        request: Kangyi_Tracing_V1_GetPersonRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_GetPersonResponse {
        var violations = FieldViolations()
        let id = Self.uuid(request.personID, field: "person_id", &violations)
        let unmasked = Self.unmasked(request.reason, &violations)
        try violations.throwIfAny()
        guard let id, let person = try await persons.fetch(id) else { throw ServiceError.notFound("person") }
        if unmasked { try await persons.recordAccess(to: [id], method: "GetPerson", reason: request.reason, by: .current) }
        return .with { $0.person = person.wire(unmasked: unmasked) }
    }

    public func findPerson(
        request: Kangyi_Tracing_V1_FindPersonRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_FindPersonResponse {
        var violations = FieldViolations()
        var phone: String?
        var idNumber: String?
        switch (request.phone.isEmpty, request.idNumber.isEmpty) {
        case (true, true), (false, false):
            violations.add("phone", "ONE_OF_PHONE_OR_ID_NUMBER", "give exactly one of phone and id_number")
        case (false, true):
            phone = Phone.normalize(request.phone)
            if phone == nil { violations.add("phone", "INVALID_PHONE", "not a mainland mobile number") }
        case (true, false):
            switch ResidentID.normalize(request.idNumber) {
            case .success(let number): idNumber = number
            case .failure(let problem): violations.add("id_number", problem.reason, problem.description)
            }
        }
        let unmasked = Self.unmasked(request.reason, &violations)
        try violations.throwIfAny()
        let found = try await persons.find(phone: phone, idNumber: idNumber)
        if unmasked {
            try await persons.recordAccess(to: found.map(\.id), method: "FindPerson", reason: request.reason, by: .current)
        }
        return .with { $0.persons = found.map { $0.wire(unmasked: unmasked) } }
    }

    public func listTasks(
        request: Kangyi_Tracing_V1_ListTasksRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_ListTasksResponse {
        var violations = FieldViolations()
        var filter = TaskStore.TaskFilter(overdueOnly: request.overdueOnly)
        for (index, status) in request.statuses.enumerated() {
            if let name = TracingNames.statuses.name(status) { filter.statuses.append(name) } else {
                violations.add("statuses[\(index)]", "INVALID_STATUS", "pending, following or closed")
            }
        }
        violations.checkDistrict(request.district, in: try await reference.get(), required: false)
        violations.checkText(request.investigator, field: "investigator", required: false, limit: 200)
        if request.hasDueBefore { filter.dueBefore = violations.checkTimestamp(request.dueBefore, field: "due_before") }
        if !request.caseID.isEmpty { filter.caseID = Self.uuid(request.caseID, field: "case_id", &violations) }
        try violations.throwIfAny()
        filter.district = request.district.isEmpty ? nil : request.district
        filter.investigator = request.investigator.isEmpty ? nil : request.investigator
        let pageSize = try PageToken.pageSize(request.pageSize)
        let after = try PageToken.decode(request.pageToken, as: TaskStore.TaskPageKey.self, fingerprint: filter.fingerprint)
        let rows = try await tasks.list(filter, after: after, limit: pageSize + 1)
        let page = Array(rows.prefix(pageSize))
        let shown = try await show(page, reason: "", unmasked: false, method: "ListTasks")
        return .with {
            $0.tasks = shown
            if rows.count > pageSize, let last = page.last {
                $0.nextPageToken = PageToken.encode(
                    TaskStore.TaskPageKey(listedAt: last.listedAt, id: last.id), fingerprint: filter.fingerprint)
            }
        }
    }

    public func watchOverdue(
        request: Kangyi_Tracing_V1_WatchOverdueRequest, response: RPCWriter<Kangyi_Tracing_V1_WatchOverdueResponse>,
        context: ServerContext
    ) async throws {
        var violations = FieldViolations()
        violations.checkDistrict(request.district, in: try await reference.get(), required: false)
        try violations.throwIfAny()
        let district = request.district.isEmpty ? nil : request.district
        func send(_ overdue: OverdueRecord) async throws {
            let shown = try await show([overdue.task], reason: "", unmasked: false, method: "WatchOverdue")
            try await response.write(.with {
                $0.task = shown[0]
                $0.missedDueAt = Google_Protobuf_Timestamp(date: overdue.dueAt)
                $0.cursor = OverdueCursor.token(overdue.seq)
            })
        }
        var after: Int64
        if request.cursor.isEmpty {
            // What is overdue now first, then each new miss.
            after = try await tasks.lastOverdueSeq()
            for overdue in try await tasks.stillOverdue(upTo: after, district: district) { try await send(overdue) }
        } else {
            after = try OverdueCursor.seq(request.cursor)
        }
        try await followFeed(
            from: after, context: context, idle: .milliseconds(250),
            next: { try await tasks.overdue(after: $0, district: district, limit: $1).map { (row: $0, cursor: $0.seq) } },
            write: { overdue, _ in try await send(overdue) })
    }

    public func getTracingStatistics(
        request: Kangyi_Tracing_V1_GetTracingStatisticsRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_GetTracingStatisticsResponse {
        var violations = FieldViolations()
        let listed = violations.checkRequiredRange(request.listed, has: request.hasListed, field: "listed", maxDays: 93)
        violations.checkDistrict(request.district, in: try await reference.get(), required: false)
        try violations.throwIfAny()
        guard let listed else { throw ServiceError.invalidArgument(violations.all) }
        let statistics = try await tasks.statistics(
            from: listed.start, before: listed.end, district: request.district.isEmpty ? nil : request.district)
        return .with {
            $0.days = statistics.days.map { day in
                .with {
                    $0.day = day.day
                    $0.district = day.district
                    $0.contactsListed = day.listed
                    $0.reachedWithin24H = day.reachedWithin24h
                    $0.reachedWithin24HShare = day.listed == 0 ? 0 : Double(day.reachedWithin24h) / Double(day.listed)
                    if let median = day.medianSecondsToFirstReach {
                        $0.medianTimeToFirstReach = Google_Protobuf_Duration(rounding: median)
                    }
                    $0.reached = day.reached
                    $0.attemptsPerReachedPerson = day.reached == 0 ? 0 : Double(day.attemptsToReach) / Double(day.reached)
                    $0.overdueNow = day.overdueNow
                    $0.symptomaticFound = day.symptomatic
                    $0.convertedToCases = day.converted
                }
            }
            $0.investigators = statistics.investigators.map { investigator in
                .with {
                    $0.investigator = investigator.name
                    $0.calls = investigator.calls
                    $0.reached = investigator.reached
                }
            }
        }
    }

    public func listAccessLog(
        request: Kangyi_Tracing_V1_ListAccessLogRequest, context: ServerContext
    ) async throws -> Kangyi_Tracing_V1_ListAccessLogResponse {
        var violations = FieldViolations()
        var filter = PersonStore.AccessFilter()
        if !request.personID.isEmpty { filter.person = Self.uuid(request.personID, field: "person_id", &violations) }
        violations.checkText(request.reader, field: "reader", required: false, limit: 200)
        if request.read.hasStart { filter.from = violations.checkTimestamp(request.read.start, field: "read.start") }
        if request.read.hasEnd { filter.before = violations.checkTimestamp(request.read.end, field: "read.end") }
        try violations.throwIfAny()
        filter.reader = request.reader.isEmpty ? nil : request.reader
        let pageSize = try PageToken.pageSize(request.pageSize)
        let before = try PageToken.decode(request.pageToken, as: Int64.self, fingerprint: filter.fingerprint)
        let rows = try await persons.accessLog(filter, before: before, limit: pageSize + 1)
        let page = rows.prefix(pageSize)
        return .with {
            $0.entries = page.map(\.wire)
            if rows.count > pageSize, let last = page.last {
                $0.nextPageToken = PageToken.encode(last.seq, fingerprint: filter.fingerprint)
            }
        }
    }

    // MARK: Showing persons

    /// The tasks with their persons; unmasked ones are logged (one entry per person) before they are sent.
    private func show(_ shown: [TaskRecord], reason: String, unmasked: Bool, method: String) async throws
        -> [Kangyi_Tracing_V1_Task]
    {
        let people = try await tasks.client.withConnection { connection in
            try await persons.fetch(Array(Set(shown.map(\.personID))), on: connection)
        }
        if unmasked {
            try await persons.recordAccess(to: Array(people.keys), method: method, reason: reason, by: .current)
        }
        return shown.map { $0.wire(person: people[$0.personID], unmasked: unmasked) }
    }

    // MARK: Checks

    /// The investigator the gateway vouched for; calls are attributed to them, so anonymous ones are refused.
    static func actor() throws -> CallerIdentity {
        try CallerIdentity.vouched(reason: "INVESTIGATOR_IDENTITY_REQUIRED", "tracing actions", need: "an investigator identity")
    }

    /// Whether the answer may show personal data: the caller holds pii.read and says why.
    static func unmasked(_ reason: String, _ violations: inout FieldViolations) -> Bool {
        violations.checkText(reason, field: "reason", required: false, limit: 500)
        return CallerIdentity.current.has(scope: Scope.personalData)
            && !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }

    static func uuid(_ raw: String, field: String, _ violations: inout FieldViolations) -> UUID? {
        let id = UUID(uuidString: raw)
        if id == nil { violations.add(field, "INVALID_\(field.uppercased())", "required: a UUID") }
        return id
    }

    static func taskID(_ raw: String) throws -> UUID {
        var violations = FieldViolations()
        let id = uuid(raw, field: "task_id", &violations)
        try violations.throwIfAny()
        return id!
    }

    static func classification(
        _ wire: Kangyi_Tracing_V1_Classification, field: String, _ violations: inout FieldViolations
    ) -> String? {
        let name = TracingNames.classifications.name(wire)
        if name == nil { violations.add(field, "INVALID_CLASSIFICATION", "required: suspected or confirmed") }
        return name
    }

    /// A calendar day, not after today (China Standard Time).
    static func pastDay(_ text: String, field: String, required: Bool, _ violations: inout FieldViolations) -> String? {
        if text.isEmpty {
            if required { violations.add(field, "MISSING_DATE", "required: YYYY-MM-DD") }
            return nil
        }
        guard let day = CalendarDay.parse(text) else {
            violations.add(field, "INVALID_DATE", "a real day as YYYY-MM-DD")
            return nil
        }
        if day > CalendarDay.of(Date()) {
            violations.add(field, "DATE_IN_FUTURE", "must not be after today (China Standard Time)")
            return nil
        }
        return day
    }
}
