import Foundation
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

/// The tracing domain in its wire shapes.

extension TaskRecord {
    /// With its person (masked unless `unmasked`); a task's person is always fetched with it.
    func wire(person: PersonRecord?, unmasked: Bool) -> Kangyi_Tracing_V1_Task {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.source = TracingNames.sources.wire(source) ?? .unspecified
            $0.caseID = caseID?.uuidString.lowercased() ?? ""
            if let person { $0.person = person.wire(unmasked: unmasked) } else { $0.person.id = personID.uuidString.lowercased() }
            $0.relation = relation.flatMap(TracingNames.relations.wire) ?? .unspecified
            $0.lastExposureDate = lastExposure
            $0.district = district ?? ""
            $0.status = TracingNames.statuses.wire(status) ?? .unspecified
            $0.listedAt = Google_Protobuf_Timestamp(date: listedAt)
            if let dueAt { $0.dueAt = Google_Protobuf_Timestamp(date: dueAt) }
            if let callableFrom { $0.callableFrom = Google_Protobuf_Timestamp(date: callableFrom) }
            if let firstReachedAt { $0.firstReachedAt = Google_Protobuf_Timestamp(date: firstReachedAt) }
            if let lastReachedAt { $0.lastReachedAt = Google_Protobuf_Timestamp(date: lastReachedAt) }
            $0.followUpUntil = followUpUntil
            $0.attempts = Int32(clamping: attempts)
            $0.symptomatic = symptomatic
            $0.overdue = !isClosed && (dueAt.map { $0 < Date() } ?? false)
            if let holder = claimHolder, let claimExpiresAt {
                $0.claimedBy = holder
                $0.claimExpiresAt = Google_Protobuf_Timestamp(date: claimExpiresAt)
            }
            $0.closeReason = closeReason.flatMap(TracingNames.closeReasons.wire) ?? .unspecified
            if let closedAt { $0.closedAt = Google_Protobuf_Timestamp(date: closedAt) }
            $0.convertedCaseID = convertedCaseID?.uuidString.lowercased() ?? ""
            if let origin = checkpoint {
                $0.checkpoint = .with {
                    $0.checkpoint = origin.checkpoint
                    $0.terminalID = origin.terminalID
                    $0.sequence = origin.sequence
                    $0.plate = origin.plate
                    $0.flags = origin.flags
                    $0.observedAt = Google_Protobuf_Timestamp(date: origin.observedAt)
                }
            }
        }
    }
}

extension CaseRecord {
    var wire: Kangyi_Tracing_V1_Case {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.indexPersonID = indexPersonID.uuidString.lowercased()
            $0.classification = TracingNames.classifications.wire(classification) ?? .unspecified
            $0.onsetDate = onsetDate ?? ""
            $0.source = source
            $0.district = district ?? ""
            $0.createdBy = .with {
                $0.caller = createdBy
                $0.department = createdByDepartment
            }
            $0.createTime = Google_Protobuf_Timestamp(date: createdAt)
        }
    }
}

extension AttemptRecord {
    /// The quarantine place and the note are personal data: masked unless `unmasked`.
    func wire(unmasked: Bool) -> Kangyi_Tracing_V1_CallAttempt {
        .with {
            $0.id = id.uuidString.lowercased()
            $0.outcome = TracingNames.outcomes.wire(outcome) ?? .unspecified
            $0.investigator = .with {
                $0.caller = investigator
                $0.department = investigatorDepartment
            }
            $0.attemptedAt = Google_Protobuf_Timestamp(date: attemptedAt)
            $0.symptoms = symptoms.compactMap(TracingNames.symptoms.wire)
            $0.temperatureDecidegrees = Int32(temperature ?? 0)
            $0.quarantine = quarantine.flatMap(TracingNames.quarantines.wire) ?? .unspecified
            $0.quarantineLocation = (unmasked ? quarantineLocation : quarantineLocation.map(Masks.text)) ?? ""
            $0.note = (unmasked ? note : note.map(Masks.text)) ?? ""
            if let nextFollowUp { $0.nextFollowUp = Google_Protobuf_Timestamp(date: nextFollowUp) }
        }
    }
}

extension TaskStore.AddedContact {
    var wire: Kangyi_Tracing_V1_AddedContact {
        .with {
            $0.personID = personID.uuidString.lowercased()
            $0.taskID = taskID.uuidString.lowercased()
            $0.created = created
        }
    }
}

extension PersonStore.AccessEntry {
    var wire: Kangyi_Tracing_V1_AccessLogEntry {
        .with {
            $0.seq = seq
            $0.reader = .with {
                $0.caller = reader
                $0.department = readerDepartment
            }
            $0.personID = person.uuidString.lowercased()
            $0.method = method
            $0.reason = reason
            $0.requestID = requestID
            $0.readAt = Google_Protobuf_Timestamp(date: readAt)
        }
    }
}
