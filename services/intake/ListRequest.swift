import Foundation
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

extension HelpRequestFilter {
    /// The filter a `ListHelpRequestsRequest` asks for, every field checked.
    init(_ request: Kangyi_Intake_V1_ListHelpRequestsRequest, reference: ReferenceData) throws {
        var violations: [ServiceError.FieldViolation] = []
        for (index, status) in request.statuses.enumerated() {
            if let known = HelpRequestStatus(status) { statuses.append(known) } else {
                violations.append(.init(field: "statuses[\(index)]", reason: "INVALID_STATUS", description: "not a known status"))
            }
        }
        if !request.category.isEmpty {
            if reference.category(request.category) == nil {
                violations.append(.init(field: "category", reason: "UNKNOWN_CATEGORY", description: "unknown category"))
            }
            category = request.category
        }
        if !request.district.isEmpty {
            if reference.district(request.district) == nil {
                violations.append(.init(field: "district", reason: "UNKNOWN_DISTRICT", description: "unknown district code"))
            }
            district = request.district
        }
        if request.specialGroup != .unspecified {
            specialGroup = SpecialGroup(request.specialGroup)
            if specialGroup == nil {
                violations.append(.init(field: "special_group", reason: "UNKNOWN_SPECIAL_GROUP", description: "not a known special group"))
            }
        }
        if request.hasCreateTime {
            if request.createTime.hasStart { createdFrom = request.createTime.start.date }
            if request.createTime.hasEnd { createdBefore = request.createTime.end.date }
            if let from = createdFrom, let before = createdBefore, from >= before {
                violations.append(.init(field: "create_time", reason: "EMPTY_TIME_RANGE", description: "start must be before end"))
            }
        }
        switch request.order {
        case .unspecified, .priority: newestFirst = false
        case .newest: newestFirst = true
        case .UNRECOGNIZED: violations.append(.init(field: "order", reason: "INVALID_ORDER", description: "not a known order"))
        }
        if !violations.isEmpty { throw ServiceError.invalidArgument(violations) }
    }
}

/// Page tokens are opaque to callers: base64 JSON of where the last page ended and which filter it served.
enum PageToken {
    private struct Contents: Codable {
        var key: PageKey
        var filter: String
    }

    static func encode(_ key: PageKey, filter: HelpRequestFilter) -> String {
        let data = (try? JSONEncoder().encode(Contents(key: key, filter: filter.fingerprint))) ?? Data()
        return data.base64EncodedString()
    }

    static func decode(_ token: String, filter: HelpRequestFilter) throws -> PageKey? {
        guard !token.isEmpty else { return nil }
        guard let data = Data(base64Encoded: token), let contents = try? JSONDecoder().decode(Contents.self, from: data) else {
            throw ServiceError.invalidArgument(field: "page_token", reason: "INVALID_PAGE_TOKEN", "not a page token this service issued")
        }
        guard contents.filter == filter.fingerprint else {
            throw ServiceError.invalidArgument(
                field: "page_token", reason: "PAGE_TOKEN_MISMATCH", "the filters changed since this page token was issued")
        }
        return contents.key
    }
}

extension HelpRequestStatus {
    init?(_ wire: Kangyi_Intake_V1_HelpRequestStatus) {
        switch wire {
        case .submitted: self = .submitted
        case .verified: self = .verified
        case .rejected: self = .rejected
        case .duplicate: self = .duplicate
        case .assigned: self = .assigned
        case .resolved: self = .resolved
        case .closed: self = .closed
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }
}
