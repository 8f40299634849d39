import Foundation
import KangyiAPI
import SwiftProtobuf

/// Checks that every service makes the same way: caller-supplied ids and the shared reference codes.
extension FieldViolations {
    public mutating func checkRequestID(_ id: String, field: String) {
        if !RequestID.isWellFormed(id) {
            add(field, "INVALID_\(field.uppercased())", "required: 1-128 printable ASCII characters, reused on retry")
        }
    }

    /// An empty code is refused when `required`, else means "none".
    public mutating func checkCategory(_ code: String, in reference: ReferenceData, required: Bool) {
        let known = reference.categories.map(\.code).joined(separator: ", ")
        if code.isEmpty {
            if required { add("category", "MISSING_CATEGORY", "required: one of \(known)") }
        } else if reference.category(code) == nil {
            add("category", "UNKNOWN_CATEGORY", "unknown category; one of \(known)")
        }
    }

    public mutating func checkDistrict(_ code: String, in reference: ReferenceData, required: Bool, field: String = "district") {
        if code.isEmpty {
            if required { add(field, "MISSING_DISTRICT", "required: a district code such as 410102") }
        } else if reference.district(code) == nil {
            add(field, "UNKNOWN_DISTRICT", "unknown district code")
        }
    }

    public mutating func checkDepartment(_ code: String, in reference: ReferenceData, required: Bool) {
        let known = reference.departments.map(\.code).joined(separator: ", ")
        if code.isEmpty {
            if required { add("department", "MISSING_DEPARTMENT", "required: one of \(known)") }
        } else if reference.department(code) == nil {
            add("department", "UNKNOWN_DEPARTMENT", "unknown department; one of \(known)")
        }
    }

    /// Free text a caller adds to an action (a note, a reason): at most `limit` characters, and present
    /// when `required`.
    public mutating func checkText(_ text: String, field: String, required: Bool, limit: Int = 1000) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let name = (field.split(separator: ".").last.map(String.init) ?? field).uppercased()  // risk_area.note → NOTE
        if required && trimmed.isEmpty {
            add(field, "MISSING_\(name)", "required")
        } else if text.unicodeScalars.count > limit {
            add(field, "\(name)_TOO_LONG", "at most \(limit) characters")
        }
    }

    /// A caller's timestamp as a date, or nil with a violation when it lies outside what protobuf defines
    /// (0001-01-01 to 9999-12-31, nanos 0-999,999,999): SwiftProtobuf's conversion traps beyond that, so
    /// no request timestamp is read without this check.
    public mutating func checkTimestamp(_ timestamp: Google_Protobuf_Timestamp, field: String) -> Date? {
        guard (-62_135_596_800...253_402_300_799).contains(timestamp.seconds), (0..<1_000_000_000).contains(timestamp.nanos)
        else {
            add(field, "INVALID_TIMESTAMP", "must lie between 0001-01-01 and 9999-12-31, with nanos 0-999999999")
            return nil
        }
        return timestamp.date
    }
}

extension FieldViolations {
    /// A time range both ends of which are required (`field.start` < `field.end`), at most `maxDays` long;
    /// nil with violations otherwise.
    public mutating func checkRequiredRange(
        _ range: Kangyi_Common_V1_TimeRange, has: Bool, field: String, maxDays: Int?
    ) -> (start: Date, end: Date)? {
        guard has, range.hasStart, range.hasEnd else {
            add(field, "MISSING_RANGE", "required: \(field).start and \(field).end")
            return nil
        }
        let start = checkTimestamp(range.start, field: "\(field).start")
        let end = checkTimestamp(range.end, field: "\(field).end")
        guard let start, let end else { return nil }
        if end <= start {
            add("\(field).end", "END_BEFORE_START", "must be after \(field).start")
            return nil
        }
        if let maxDays, end.timeIntervalSince(start) > Double(maxDays) * 86_400 {
            add(field, "RANGE_TOO_LONG", "at most \(maxDays) days")
            return nil
        }
        return (start, end)
    }

    /// A claim's lease as a caller asks for it (`has` false: `standard`), from 1 s to `maximum`.
    public mutating func checkLease(
        _ wire: Google_Protobuf_Duration, has: Bool, standard: Duration, maximum: Duration, field: String = "lease"
    ) -> Duration {
        guard has else { return standard }
        let seconds = wire.timeInterval
        guard seconds >= 1, seconds <= maximum.inSeconds else {
            add(field, "LEASE_OUT_OF_RANGE", "must be 1 s to \(Int(maximum.inSeconds / 60)) min")
            return standard
        }
        return .milliseconds(Int64(seconds * 1000))
    }
}
