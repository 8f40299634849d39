extension StringProtocol {
    /// The text without leading and trailing whitespace, as a view of it: no copy, and no Foundation
    /// (`trimmingCharacters(in:)` bridges through NSString, which showed in the gateway's profile).
    public var trimmingSpaces: SubSequence {
        var text = self[...]
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return text
    }
}
