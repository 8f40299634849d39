import Crypto
import Foundation

/// What a ledger stores to tell a resend (the same hash) from another record under a used key: the md5,
/// in lower-case hex, of a record's fields joined by a separator (U+001F unless a ledger's hashes were
/// made with another) — PostgreSQL's `md5()` of that string, the
/// hash ledgers held when they computed it themselves, so rows hashed either way compare equal. Computed
/// here: the group commit sends 32 characters a row instead of the record, and PostgreSQL hashes nothing.
/// The fields are gathered as bytes and hashed once (an md5 update a field cost more than the hashing).
public struct ContentHash {
    private var bytes: [UInt8] = []
    private var started = false
    private let separator: UInt8

    public init(separator: UInt8 = 0x1F) {
        self.separator = separator
        bytes.reserveCapacity(256)
    }

    public mutating func field(_ value: String) {
        separate()
        bytes.append(contentsOf: value.utf8)
    }

    public mutating func field(_ value: Int64) {
        separate()
        decimal(value)
    }

    /// A moment as the ledgers have always hashed it: whole microseconds since 1970, rounded.
    public mutating func field(_ moment: Date) {
        field(Int64((moment.timeIntervalSince1970 * 1_000_000).rounded()))
    }

    /// The values joined by commas, as one field.
    public mutating func field(_ values: [String]) {
        separate()
        for position in values.indices {
            if position > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: values[position].utf8)
        }
    }

    /// The values in decimal, joined by commas, as one field.
    public mutating func field(_ values: [Int]) {
        separate()
        for position in values.indices {
            if position > 0 { bytes.append(UInt8(ascii: ",")) }
            decimal(Int64(values[position]))
        }
    }

    public func hex() -> String {
        let digits: StaticString = "0123456789abcdef"
        let digest = Insecure.MD5.hash(data: bytes)
        return String(unsafeUninitializedCapacity: 32) { text in
            var position = 0
            digest.withUnsafeBytes { hash in
                for byte in hash {
                    text[position] = digits.utf8Start[Int(byte >> 4)]
                    text[position + 1] = digits.utf8Start[Int(byte & 0x0F)]
                    position += 2
                }
            }
            return position
        }
    }

    /// Every field but the first starts with the separator.
    private mutating func separate() {
        if started { bytes.append(separator) }
        started = true
    }

    private mutating func decimal(_ value: Int64) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let start = bytes.count
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        bytes[start...].reverse()
    }
}
