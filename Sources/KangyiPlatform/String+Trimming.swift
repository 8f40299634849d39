extension StringProtocol {
    /// The text without leading and trailing whitespace, as a view of it: no copy, and no Foundation
    /// (`trimmingCharacters(in:)` bridges through NSString, which showed in the gateway's profile).
    public var trimmingSpaces: SubSequence {
        // Most text has none: ASCII characters at both ends that are not whitespace settle it without
        // looking up Unicode's whitespace property (which showed in intake's profile).
        if let first = first?.asciiValue, let last = last?.asciiValue, !Self.asciiWhitespace(first), !Self.asciiWhitespace(last) {
            return self[...]
        }
        var text = self[...]
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return text
    }

    private static func asciiWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
}
