/// How urgent a help request is, as one number: higher is served first.
///
///     priority = urgency + special groups (capped at 40) + 5 per repeat (capped at 20)
///     effective priority = priority + 1 per hour waited (capped at 24)
///
/// urgency: routine 10, urgent 30, critical 60. Special groups: pregnant 25, elderly 20, disabled 20,
/// living alone 15, child 15, chronic illness 15. The green channel — pregnant, elderly, disabled,
/// living alone — is served before every ordinary request whatever the numbers say.
enum Priority {
    static func base(urgency: Urgency) -> Int {
        switch urgency {
        case .routine: 10
        case .urgent: 30
        case .critical: 60
        }
    }

    static func weight(of group: SpecialGroup) -> Int {
        switch group {
        case .pregnant: 25
        case .elderly, .disabled: 20
        case .livingAlone, .child, .chronicIllness: 15
        }
    }

    static let groupCap = 40
    static let perRepeat = 5
    static let repeatCap = 20
    static let waitingCapHours = 24

    static func of(urgency: Urgency, groups: [SpecialGroup], repeats: Int) -> Int {
        base(urgency: urgency)
            + min(Set(groups).reduce(0) { $0 + weight(of: $1) }, groupCap)
            + min(max(repeats, 0) * perRepeat, repeatCap)
    }

    static func effective(priority: Int, waitedSeconds: Double) -> Int {
        priority + min(max(Int(waitedSeconds / 3600), 0), waitingCapHours)
    }

    static let greenChannelGroups: Set<SpecialGroup> = [.pregnant, .elderly, .disabled, .livingAlone]

    static func isGreenChannel(_ groups: [SpecialGroup]) -> Bool {
        !greenChannelGroups.isDisjoint(with: groups)
    }
}
