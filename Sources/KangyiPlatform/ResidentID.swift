import Foundation

/// The 18-character resident identity card number (GB 11643-1999): a 6-digit region code, the birth date
/// (YYYYMMDD), a 3-digit sequence and an ISO 7064 MOD 11-2 check character (0-9 or X).
public enum ResidentID {
    /// The number in its one stored form (upper-case X, no spaces), or the reason it is not one.
    public static func normalize(_ raw: String) -> Result<String, Problem> {
        let text = raw.trimmingSpaces.uppercased()
        let bytes = Array(text.utf8)
        guard bytes.count == 18 else { return .failure(.length) }
        guard bytes.prefix(17).allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[17]) || bytes[17] == UInt8(ascii: "X")
        else { return .failure(.characters) }
        let digits = bytes.prefix(17).map { Int($0 - UInt8(ascii: "0")) }
        guard isBirthDate(year: number(digits[6..<10]), month: number(digits[10..<12]), day: number(digits[12..<14])) else {
            return .failure(.birthDate)
        }
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        let sum = zip(digits, weights).reduce(0) { $0 + $1.0 * $1.1 }
        let check = Array("10X98765432".utf8)[sum % 11]
        guard bytes[17] == check else { return .failure(.checksum) }
        return .success(text)
    }

    public enum Problem: Error, Sendable {
        case length, characters, birthDate, checksum

        public var reason: String {
            switch self {
            case .length: "ID_NUMBER_LENGTH"
            case .characters: "ID_NUMBER_CHARACTERS"
            case .birthDate: "ID_NUMBER_BIRTH_DATE"
            case .checksum: "ID_NUMBER_CHECKSUM"
            }
        }

        public var description: String {
            switch self {
            case .length: "must be 18 characters"
            case .characters: "17 digits and a check character (0-9 or X)"
            case .birthDate: "characters 7-14 must be a real birth date"
            case .checksum: "the check character does not match (ISO 7064 MOD 11-2)"
            }
        }
    }

    /// "410102199003071234" → "4101**********1234".
    public static func mask(_ number: String) -> String {
        guard number.count == 18 else { return String(repeating: "*", count: number.count) }
        return number.prefix(4) + String(repeating: "*", count: 10) + number.suffix(4)
    }

    private static func number(_ digits: ArraySlice<Int>) -> Int { digits.reduce(0) { $0 * 10 + $1 } }

    private static func isBirthDate(year: Int, month: Int, day: Int) -> Bool {
        guard (1900...2100).contains(year), (1...12).contains(month), day >= 1 else { return false }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: 1)),
            let days = calendar.range(of: .day, in: .month, for: date)
        else { return false }
        return days.contains(day)
    }
}
