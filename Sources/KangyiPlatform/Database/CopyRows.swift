import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Rows in the text format of `COPY … FROM STDIN`, written straight into bytes: the fast way to put
/// rows that cannot conflict into a table (one message stream, no binds to encode, nothing to plan or
/// return). Every row must write the columns given to ``PostgresConnection/copy(into:columns:logger:rows:)``,
/// in order; NULL is never written (use a column's default by leaving it out). The bytes are an array,
/// handed to the connection whole: a `ByteBuffer` checks exclusive access at every write, and a row is
/// dozens of small writes (a sixth of the checkpoint server's CPU went to them).
public struct CopyRows {
    var bytes: [UInt8] = []
    private var startOfRow = true

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    public mutating func text(_ value: String) {
        separate()
        writeEscaped(value)
    }

    /// Concrete rather than generic over `FixedWidthInteger`: callers are in other modules, where a
    /// generic one runs unspecialised.
    public mutating func integer(_ value: Int64) {
        separate()
        writeDecimal(value)
    }

    public mutating func integer(_ value: Int) { integer(Int64(value)) }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(value ? UInt8(ascii: "t") : UInt8(ascii: "f"))
    }

    /// The moment exactly as PostgresNIO's binary encoding of `Date` stores it (whole microseconds,
    /// truncated), so a row copied here equals one inserted with the same `Date` as a bind.
    public mutating func timestamp(_ date: Date) {
        separate()
        PostgresTimestamp.write(microsecondsSince2000: PostgresTimestamp.microseconds(date), into: &bytes)
    }

    public mutating func integerArray(_ values: [Int]) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        for index in values.indices {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            writeDecimal(Int64(values[index]))
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// Each element quoted, so any text is an element (an empty one, "NULL", one with commas or braces).
    public mutating func textArray(_ values: [String]) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        for index in values.indices {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            // The array literal's own escapes (\" and \\) are themselves escaped for COPY (\\" and \\\\).
            for byte in values[index].utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { backslash(then: UInt8(ascii: "\\")) }
                writeEscaped(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func endRow() {
        bytes.append(UInt8(ascii: "\n"))
        startOfRow = true
    }

    private mutating func writeDecimal(_ value: Int64) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        bytes.appendDigits(value.magnitude, width: 1)
    }

    private mutating func separate() {
        if !startOfRow { bytes.append(UInt8(ascii: "\t")) }
        startOfRow = false
    }

    private mutating func writeEscaped(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            // The usual text has nothing to escape: one copy. (Scanned as raw bytes: the UTF-8 view's
            // iterator was a tenth of the servers' COPY work.)
            if !utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) {
                bytes.append(contentsOf: utf8)
            } else {
                for byte in utf8 { writeEscaped(byte) }
            }
        }
    }

    private mutating func writeEscaped(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\\"): backslash(then: UInt8(ascii: "\\"))
        case UInt8(ascii: "\t"): backslash(then: UInt8(ascii: "t"))
        case UInt8(ascii: "\n"): backslash(then: UInt8(ascii: "n"))
        case UInt8(ascii: "\r"): backslash(then: UInt8(ascii: "r"))
        default: bytes.append(byte)
        }
    }

    private mutating func backslash(then byte: UInt8) {
        bytes.append(UInt8(ascii: "\\"))
        bytes.append(byte)
    }
}

extension PostgresConnection {
    /// Sends the rows `rows` writes into `table` (schema-qualified, e.g. `checkpoint.vehicle_logs`) with
    /// `COPY … FROM STDIN`, as one buffer: callers copy one bounded batch. Throws what PostgreSQL refuses;
    /// inside a transaction, the transaction is then failed.
    public func copy(
        into table: String, columns: [String], logger: Logger, rows: (inout CopyRows) throws -> Void
    ) async throws {
        var copy = CopyRows(capacity: 64 * 1024)
        try rows(&copy)
        guard !copy.bytes.isEmpty else { return }
        let buffer = ByteBuffer(bytes: copy.bytes)
        // postgres-nio quotes the name as one identifier; a qualified name needs its dot outside the quotes.
        let quoted = table.split(separator: ".").joined(separator: "\".\"")
        // postgres-nio 1.33's COPY also traps (the process dies) when its writer is used after the connection
        // failed but before its handler was removed — seen when the database crashed mid-upload. So the COPY
        // starts only on an open connection (``whenOpen``, which also keeps it on the connection's loop, where
        // nothing interleaves with these checks), and a closing connection is waited out before each
        // hand-back to postgres-nio: afterwards the writer reports the connection closed instead.
        try await whenOpen {
            try await copyFrom(table: quoted, columns: columns, logger: logger) { writer in
                do {
                    await waitOutClosing()
                    try await writer.write(buffer)
                } catch {
                    await waitOutClosing()
                    throw error
                }
                await waitOutClosing()
            }
        }
    }

    /// Returns at once while the connection is open; once it is closing, only when its handlers are gone
    /// (NIO completes `closeFuture` after removing them).
    private func waitOutClosing() async {
        guard isClosed else { return }
        try? await closeFuture.get()
    }
}

/// `timestamptz` values as PostgreSQL stores them: whole microseconds since 2000-01-01 UTC.
public enum PostgresTimestamp {
    static let epoch = Date(timeIntervalSince1970: 946_684_800)

    /// What PostgresNIO's binary encoding of `date` stores (it truncates).
    public static func microseconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince(epoch) * 1_000_000) }

    /// `2026-11-22 20:12:10.123456+00`: PostgreSQL's text input for the same value.
    static func write(microsecondsSince2000 micros: Int64, into buffer: inout [UInt8]) {
        let (days, remainder) = micros.quotientAndRemainder(dividingBy: 86_400_000_000)
        let (day, time) = remainder < 0 ? (days - 1, remainder + 86_400_000_000) : (days, remainder)
        let (year, month, dayOfMonth) = CalendarDay.civil(daysSince1970: Int(day) + 10_957)
        let seconds = UInt64(time / 1_000_000)
        buffer.appendDigits(UInt64(year), width: 4)
        buffer.append(UInt8(ascii: "-"))
        buffer.appendDigits(UInt64(month), width: 2)
        buffer.append(UInt8(ascii: "-"))
        buffer.appendDigits(UInt64(dayOfMonth), width: 2)
        buffer.append(UInt8(ascii: " "))
        buffer.appendDigits(seconds / 3_600, width: 2)
        buffer.append(UInt8(ascii: ":"))
        buffer.appendDigits(seconds / 60 % 60, width: 2)
        buffer.append(UInt8(ascii: ":"))
        buffer.appendDigits(seconds % 60, width: 2)
        buffer.append(UInt8(ascii: "."))
        buffer.appendDigits(UInt64(time % 1_000_000), width: 6)
        buffer.append(UInt8(ascii: "+"))
        buffer.append(UInt8(ascii: "0"))
        buffer.append(UInt8(ascii: "0"))
    }
}

extension [UInt8] {
    /// `value` in decimal ASCII, zero-padded to at least `width` digits: zeros appended, then the digits
    /// written in place from the right (appending and reversing went through a slice copy).
    mutating func appendDigits(_ value: UInt64, width: Int) {
        var length = 1
        var rest = value / 10
        while rest > 0 {
            length += 1
            rest /= 10
        }
        let end = count + Swift.max(length, width)
        append(contentsOf: repeatElement(UInt8(ascii: "0"), count: end - count))
        withUnsafeMutableBufferPointer { buffer in
            var value = value
            var position = end
            repeat {
                position -= 1
                buffer[position] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
        }
    }
}
