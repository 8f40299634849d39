import NIOCore
import PostgresNIO

/// An `int8[]` column read in one pass over PostgreSQL's binary array format. PostgresNIO decodes
/// `[Int64]` element by element through its generic decoding path, which cost a quarter of the
/// price-watch server's CPU where day aggregates of thousands of prices are read per batch; this is a
/// plain loop. NULL elements and arrays of more than one dimension are refused (a decoding error).
public struct Int64Array: PostgresDecodable, Sendable, Equatable {
    public var values: [Int64]

    public init(_ values: [Int64]) { self.values = values }

    public init(
        from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
        context: PostgresDecodingContext<some PostgresJSONDecoder>
    ) throws {
        guard format == .binary, type == .int8Array else { throw PostgresDecodingError.Code.typeMismatch }
        // Header: dimensions, has-nulls flag, element type; then per dimension its length and lower bound.
        guard let (dimensions, hasNulls, element) = buffer.readMultipleIntegers(as: (Int32, Int32, UInt32).self),
            hasNulls == 0, element == PostgresDataType.int8.rawValue, (0...1).contains(dimensions)
        else { throw PostgresDecodingError.Code.failure }
        guard dimensions == 1 else {
            values = []
            return
        }
        guard let (count, _) = buffer.readMultipleIntegers(as: (Int32, Int32).self), count >= 0,
            buffer.readableBytes == Int(count) * 12
        else { throw PostgresDecodingError.Code.failure }
        values = try [Int64](unsafeUninitializedCapacity: Int(count)) { storage, initialized in
            for index in 0..<Int(count) {
                guard let (length, value) = buffer.readMultipleIntegers(as: (Int32, Int64).self), length == 8 else {
                    throw PostgresDecodingError.Code.failure
                }
                storage[index] = value
                initialized = index + 1
            }
        }
    }
}
