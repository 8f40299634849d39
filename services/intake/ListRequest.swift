import Foundation
import KangyiAPI
import KangyiPlatform
import SwiftProtobuf

extension HelpRequestFilter {
    /// The filter a `ListHelpRequestsRequest` asks for, every field checked.
    init(_ request: Kangyi_Intake_V1_ListHelpRequestsRequest, reference: ReferenceData) throws {
        var violations = FieldViolations()
        for (index, status) in request.statuses.enumerated() {
            if let known = HelpRequestStatus(status) { statuses.append(known) } else {
                violations.add("statuses[\(index)]", "INVALID_STATUS", "not a known status")
            }
        }
        violations.checkCategory(request.category, in: reference, required: false)
        violations.checkDistrict(request.district, in: reference, required: false)
        category = request.category.isEmpty ? nil : request.category
        district = request.district.isEmpty ? nil : request.district
        if request.specialGroup != .unspecified {
            specialGroup = SpecialGroup(request.specialGroup)
            if specialGroup == nil {
                violations.add("special_group", "UNKNOWN_SPECIAL_GROUP", "not a known special group")
            }
        }
        if request.hasCreateTime {
            if request.createTime.hasStart {
                createdFrom = violations.checkTimestamp(request.createTime.start, field: "create_time.start")
            }
            if request.createTime.hasEnd {
                createdBefore = violations.checkTimestamp(request.createTime.end, field: "create_time.end")
            }
            if let from = createdFrom, let before = createdBefore, from >= before {
                violations.add("create_time", "EMPTY_TIME_RANGE", "start must be before end")
            }
        }
        switch request.order {
        case .unspecified, .priority: newestFirst = false
        case .newest: newestFirst = true
        case .UNRECOGNIZED: violations.add("order", "INVALID_ORDER", "not a known order")
        }
        try violations.throwIfAny()
    }
}
