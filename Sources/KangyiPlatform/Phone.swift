/// Mainland China mobile numbers: the one form stored (11 digits) and the one form shown to callers
/// without the personal-data scope (`138****5678`).
public enum Phone {
    /// "+86 138-1234-5678", "0086 13812345678", "(138) 1234 5678" → "13812345678"; nil if it is not a
    /// mainland mobile number (11 digits, starting 13–19).
    public static func normalize(_ raw: String) -> String? {
        // Scalar by scalar (every submission comes through here): ASCII digits are kept, the separators
        // skipped, and anything else — a letter, a full-width digit, a combining mark — refuses the number.
        var kept: [UInt8] = []
        kept.reserveCapacity(16)
        for scalar in raw.unicodeScalars {
            switch scalar {
            case "0"..."9": kept.append(UInt8(scalar.value))
            case " ", "-", "(", ")", "+", ".", "\u{3000}": continue
            default: return nil
            }
        }
        var digits = String(decoding: kept, as: UTF8.self)
        let trimmed = raw.trimmingSpaces
        if trimmed.hasPrefix("+") && !trimmed.hasPrefix("+86") { return nil }  // another country's number
        if trimmed.hasPrefix("+86") || (digits.count == 13 && digits.hasPrefix("86")) {
            digits.removeFirst(2)
        } else if digits.count == 15 && digits.hasPrefix("0086") {
            digits.removeFirst(4)
        }
        let bytes = Array(digits.utf8)
        guard bytes.count == 11, bytes[0] == UInt8(ascii: "1"), (UInt8(ascii: "3")...UInt8(ascii: "9")).contains(bytes[1])
        else { return nil }
        return digits
    }

    /// "13812345678" → "138****5678".
    public static func mask(_ phone: String) -> String {
        guard phone.count == 11 else { return String(repeating: "*", count: phone.count) }
        return phone.prefix(3) + "****" + phone.suffix(4)
    }
}
