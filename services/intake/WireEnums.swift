import KangyiAPI

/// The intake domain's enums and their wire twins, both ways, in one place.

extension SpecialGroup {
    init?(_ wire: Kangyi_Intake_V1_SpecialGroup) {
        switch wire {
        case .pregnant: self = .pregnant
        case .elderly: self = .elderly
        case .disabled: self = .disabled
        case .livingAlone: self = .livingAlone
        case .child: self = .child
        case .chronicIllness: self = .chronicIllness
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    var wire: Kangyi_Intake_V1_SpecialGroup {
        switch self {
        case .pregnant: .pregnant
        case .elderly: .elderly
        case .disabled: .disabled
        case .livingAlone: .livingAlone
        case .child: .child
        case .chronicIllness: .chronicIllness
        }
    }
}

extension Urgency {
    init?(_ wire: Kangyi_Intake_V1_Urgency) {
        switch wire {
        case .unspecified, .routine: self = .routine
        case .urgent: self = .urgent
        case .critical: self = .critical
        case .UNRECOGNIZED: return nil
        }
    }

    var wire: Kangyi_Intake_V1_Urgency {
        switch self {
        case .routine: .routine
        case .urgent: .urgent
        case .critical: .critical
        }
    }
}

extension HelpRequestStatus {
    var wire: Kangyi_Intake_V1_HelpRequestStatus {
        switch self {
        case .submitted: .submitted
        case .verified: .verified
        case .rejected: .rejected
        case .duplicate: .duplicate
        case .assigned: .assigned
        case .resolved: .resolved
        case .closed: .closed
        }
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
