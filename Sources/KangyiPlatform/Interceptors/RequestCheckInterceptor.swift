import Foundation
import GRPCCore
import SwiftProtobuf

/// Checks every request message of every RPC before a handler sees it, for what would otherwise fail
/// far from its cause:
/// - **Size.** Over `maxBytes` (`KANGYI_MAX_REQUEST_BYTES`) is RESOURCE_EXHAUSTED naming the limit.
///   grpc-swift's transport can only reset the stream of a message over its own limit (grpcio reports
///   CANCELLED, with no reason), so the transport's limit is set higher (``transportCeiling``) and the
///   precise answer is given here; only a message beyond that ceiling still meets the reset.
/// - **Text PostgreSQL would refuse:** a NUL character (U+0000) in any string field, at any depth.
///   Without this check such a message reaches a group commit. The answer is INVALID_ARGUMENT naming each
///   field path (`contact.name`, `items[3].note`). (Invalid UTF-8 never gets this far: it does not decode.)
///
/// Sits inside error mapping; messages are checked as the handler reads them, so a stream's bad message
/// ends that stream with the precise status. The gateway's messages are bytes: only their size is checked.
public struct RequestCheckInterceptor: ServerInterceptor {
    let maxBytes: Int
    let index: DescriptorIndex

    public init(maxBytes: Int, index: DescriptorIndex = .embedded) {
        self.maxBytes = maxBytes
        self.index = index
    }

    /// The limit the transport enforces by resetting the stream: twice the configured one, so that
    /// memory stays bounded and everything in between gets a precise answer.
    public static func transportCeiling(for maxBytes: Int) -> Int { maxBytes * 2 }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let (index, maxBytes) = (self.index, self.maxBytes)
        let checked = request.messages.map { message in
            if let bytes = message as? [UInt8] {
                try Self.checkSize(bytes.count, limit: maxBytes)
            } else if let message = message as? any SwiftProtobuf.Message {
                let scan = TextInput.scan(message, index: index)
                // The scan's count is a lower bound of the encoded size; encode only when it comes close.
                if scan.approximateBytes > maxBytes / 2 {
                    try Self.checkSize(((try? message.serializedBytes()) as [UInt8]?)?.count ?? 0, limit: maxBytes)
                }
                if !scan.violations.isEmpty { throw ServiceError.invalidArgument(scan.violations) }
            }
            return message
        }
        return try await next(
            StreamingServerRequest(metadata: request.metadata, messages: RPCAsyncSequence(wrapping: checked)), context)
    }

    static func checkSize(_ size: Int, limit: Int) throws {
        guard size > limit else { return }
        throw ServiceError(
            code: .resourceExhausted, reason: "MESSAGE_TOO_LARGE",
            message: "the request message is \(size) bytes; the largest accepted is \(limit) bytes")
    }
}

/// The text check itself, usable on its own (a batch item, a fuzz target).
public enum TextInput {
    /// One violation per string field that holds a NUL character, named by its path.
    public static func violations(in message: any SwiftProtobuf.Message, index: DescriptorIndex = .embedded)
        -> [ServiceError.FieldViolation]
    {
        scan(message, index: index).violations
    }

    /// The violations, and a lower bound of the message's encoded size (text and bytes, one per field).
    static func scan(_ message: any SwiftProtobuf.Message, index: DescriptorIndex)
        -> (violations: [ServiceError.FieldViolation], approximateBytes: Int)
    {
        var visitor = NulFinder(index: index, messageName: type(of: message).protoMessageName, path: "")
        try? message.traverse(visitor: &visitor)
        let violations = visitor.found.map {
            ServiceError.FieldViolation(
                field: $0, reason: "INVALID_CHARACTER", description: "must not contain the NUL character (U+0000)")
        }
        return (violations, visitor.bytes)
    }

    /// Whether `text` can be stored in a PostgreSQL `text` column.
    public static func isStorable(_ text: String) -> Bool { !text.utf8.contains(0) }
}

private struct NulFinder: SwiftProtobuf.Visitor {
    let index: DescriptorIndex
    let messageName: String
    let path: String
    var found: [String] = []
    /// Text and bytes seen, plus one per field: a lower bound of the encoded size.
    var bytes = 0

    func field(_ number: Int) -> String {
        let name = index.fieldName(of: messageName, number: number) ?? "field_\(number)"
        return path.isEmpty ? name : path + "." + name
    }

    mutating func check(_ text: String, at field: String) {
        bytes += text.utf8.count + 1
        if !TextInput.isStorable(text) { found.append(field) }
    }

    mutating func descend(_ message: any SwiftProtobuf.Message, at field: String) {
        var inner = NulFinder(index: index, messageName: type(of: message).protoMessageName, path: field)
        try? message.traverse(visitor: &inner)
        found += inner.found
        bytes += inner.bytes + 1
    }

    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {
        check(value, at: field(fieldNumber))
    }

    mutating func visitRepeatedStringField(value: [String], fieldNumber: Int) throws {
        for (position, text) in value.enumerated() { check(text, at: "\(field(fieldNumber))[\(position)]") }
    }

    mutating func visitSingularMessageField<M: SwiftProtobuf.Message>(value: M, fieldNumber: Int) throws {
        descend(value, at: field(fieldNumber))
    }

    mutating func visitRepeatedMessageField<M: SwiftProtobuf.Message>(value: [M], fieldNumber: Int) throws {
        for (position, message) in value.enumerated() { descend(message, at: "\(field(fieldNumber))[\(position)]") }
    }

    mutating func visitSingularGroupField<G: SwiftProtobuf.Message>(value: G, fieldNumber: Int) throws {
        descend(value, at: field(fieldNumber))
    }

    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: _ProtobufMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        for (key, entry) in value {
            if let key = key as? String { check(key, at: "\(field(fieldNumber))[key]") }
            if let entry = entry as? String { check(entry, at: "\(field(fieldNumber))[\(key)]") }
        }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {
        for key in value.keys { if let key = key as? String { check(key, at: "\(field(fieldNumber))[key]") } }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
        value: _ProtobufMessageMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws {
        for (key, entry) in value {
            if let key = key as? String { check(key, at: "\(field(fieldNumber))[key]") }
            descend(entry, at: "\(field(fieldNumber))[\(key)]")
        }
    }

    // Numbers, booleans, bytes and enums hold no text; they count towards the size.
    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws { bytes += 1 }
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws { bytes += 1 }
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws { bytes += 1 }
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws { bytes += 1 }
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws { bytes += value.count + 1 }
    mutating func visitSingularEnumField<E: SwiftProtobuf.Enum>(value: E, fieldNumber: Int) throws { bytes += 1 }
    mutating func visitUnknown(bytes unknown: Data) throws { bytes += unknown.count }
}
