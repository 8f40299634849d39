import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Rows in the text format of `COPY … FROM STDIN`, written straight into a buffer: the fast way to put
/// rows that cannot conflict into a table (one message stream, no binds to encode, nothing to plan or
/// return). Every row must write the columns given to ``PostgresConnection/copy(into:columns:logger:rows:)``,
/// in order; NULL is never written (use a column's default by leaving it out).
public struct CopyRows {
    var buffer: ByteBuffer
    private var startOfRow = true

    init(buffer: ByteBuffer) { self.buffer = buffer }

    public mutating func text(_ value: String) {
        separate()
        writeEscaped(value)
    }

    /// Any integer that fits in 64 signed bits (every integer column's).
    public mutating func integer(_ value: some FixedWidthInteger) {
        separate()
        writeDecimal(Int64(value))
    }

    public mutating func bool(_ value: Bool) {
        separate()
        buffer.writeInteger(value ? UInt8(ascii: "t") : UInt8(ascii: "f"))
    }

    /// The moment exactly as PostgresNIO's binary encoding of `Date` stores it (whole microseconds,
    /// truncated), so a row copied here equals one inserted with the same `Date` as a bind.
    public mutating func timestamp(_ date: Date) {
        separate()
        PostgresTimestamp.write(microsecondsSince2000: PostgresTimestamp.microseconds(date), into: &buffer)
    }

    public mutating func integerArray(_ values: [Int]) {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        for (index, value) in values.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            writeDecimal(Int64(value))
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// Each element quoted, so any text is an element (an empty one, "NULL", one with commas or braces).
    public mutating func textArray(_ values: [String]) {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        for (index, value) in values.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeInteger(UInt8(ascii: "\""))
            // The array literal's own escapes (\" and \\) are themselves escaped for COPY (\\" and \\\\).
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { buffer.writeStaticString("\\\\") }
                writeEscaped(byte)
            }
            buffer.writeInteger(UInt8(ascii: "\""))
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    public mutating func endRow() {
        buffer.writeInteger(UInt8(ascii: "\n"))
        startOfRow = true
    }

    private mutating func writeDecimal(_ value: Int64) {
        if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        buffer.writeDigits(value.magnitude, width: 1)
    }

    private mutating func separate() {
        if !startOfRow { buffer.writeInteger(UInt8(ascii: "\t")) }
        startOfRow = false
    }

    private mutating func writeEscaped(_ value: String) {
        var value = value
        value.withUTF8 { bytes in
            // The usual text has nothing to escape: one copy.
            if !bytes.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) {
                buffer.writeBytes(bytes)
            } else {
                for byte in bytes { writeEscaped(byte) }
            }
        }
    }

    private mutating func writeEscaped(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
        case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
        case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
        case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
        default: buffer.writeInteger(byte)
        }
    }
}

extension PostgresConnection {
    /// Sends the rows `rows` writes into `table` (schema-qualified, e.g. `checkpoint.vehicle_logs`) with
    /// `COPY … FROM STDIN`, as one buffer: callers copy one bounded batch. Throws what PostgreSQL refuses;
    /// inside a transaction, the transaction is then failed.
    public func copy(
        into table: String, columns: [String], logger: Logger, rows: (inout CopyRows) throws -> Void
    ) async throws {
        var copy = CopyRows(buffer: ByteBufferAllocator().buffer(capacity: 64 * 1024))
        try rows(&copy)
        guard copy.buffer.readableBytes > 0 else { return }
        // postgres-nio quotes the name as one identifier; a qualified name needs its dot outside the quotes.
        let quoted = table.split(separator: ".").joined(separator: "\".\"")
        try await copyFrom(table: quoted, columns: columns, logger: logger) { writer in
            try await writer.write(copy.buffer)
        }
    }
}

/// `timestamptz` values as PostgreSQL stores them: whole microseconds since 2000-01-01 UTC.
public enum PostgresTimestamp {
    static let epoch = Date(timeIntervalSince1970: 946_684_800)

    /// What PostgresNIO's binary encoding of `date` stores (it truncates).
    public static func microseconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince(epoch) * 1_000_000) }

    /// `2026-11-22 20:12:10.123456+00`: PostgreSQL's text input for the same value.
    static func write(microsecondsSince2000 micros: Int64, into buffer: inout ByteBuffer) {
        let (days, remainder) = micros.quotientAndRemainder(dividingBy: 86_400_000_000)
        let (day, time) = remainder < 0 ? (days - 1, remainder + 86_400_000_000) : (days, remainder)
        let (year, month, dayOfMonth) = CalendarDay.civil(daysSince1970: Int(day) + 10_957)
        let seconds = UInt64(time / 1_000_000)
        buffer.writeDigits(UInt64(year), width: 4)
        buffer.writeInteger(UInt8(ascii: "-"))
        buffer.writeDigits(UInt64(month), width: 2)
        buffer.writeInteger(UInt8(ascii: "-"))
        buffer.writeDigits(UInt64(dayOfMonth), width: 2)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeDigits(seconds / 3_600, width: 2)
        buffer.writeInteger(UInt8(ascii: ":"))
        buffer.writeDigits(seconds / 60 % 60, width: 2)
        buffer.writeInteger(UInt8(ascii: ":"))
        buffer.writeDigits(seconds % 60, width: 2)
        buffer.writeInteger(UInt8(ascii: "."))
        buffer.writeDigits(UInt64(time % 1_000_000), width: 6)
        buffer.writeStaticString("+00")
    }
}

extension ByteBuffer {
    /// `value` in decimal ASCII, zero-padded to at least `width` digits.
    mutating func writeDigits(_ value: UInt64, width: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for UInt64.max's 20 digits
        let count = withUnsafeMutableBytes(of: &digits) { bytes in
            var value = value
            var position = bytes.count
            repeat {
                position -= 1
                bytes[position] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0 || bytes.count - position < width
            return bytes.count - position
        }
        withUnsafeBytes(of: &digits) { bytes in _ = writeBytes(bytes[(bytes.count - count)...]) }
    }
}
