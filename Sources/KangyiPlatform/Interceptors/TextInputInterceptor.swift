import Foundation
import GRPCCore
import SwiftProtobuf

/// Refuses, for every RPC of every service, request messages with text PostgreSQL would refuse: a NUL
/// character (U+0000) in any string field, at any depth. Without it such a message reaches a group commit
/// and fails the whole batch — everyone else's submissions with it. (Invalid UTF-8 never gets this far:
/// the message does not decode.) The answer is INVALID_ARGUMENT naming each field path
/// (`contact.name`, `items[3].note`). Sits inside error mapping; messages are checked as the handler
/// reads them, so a stream's bad message ends that stream with the precise status.
public struct TextInputInterceptor: ServerInterceptor {
    let index: DescriptorIndex

    public init(index: DescriptorIndex = .embedded) {
        self.index = index
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard Input.self is any SwiftProtobuf.Message.Type else { return try await next(request, context) }
        let index = self.index
        let checked = request.messages.map { message in
            if let message = message as? any SwiftProtobuf.Message {
                let violations = TextInput.violations(in: message, index: index)
                if !violations.isEmpty { throw ServiceError.invalidArgument(violations) }
            }
            return message
        }
        return try await next(
            StreamingServerRequest(metadata: request.metadata, messages: RPCAsyncSequence(wrapping: checked)), context)
    }
}

/// The text check itself, usable on its own (a batch item, a fuzz target).
public enum TextInput {
    /// One violation per string field that holds a NUL character, named by its path.
    public static func violations(in message: any SwiftProtobuf.Message, index: DescriptorIndex = .embedded)
        -> [ServiceError.FieldViolation]
    {
        var visitor = NulFinder(index: index, messageName: type(of: message).protoMessageName, path: "")
        try? message.traverse(visitor: &visitor)
        return visitor.found.map {
            ServiceError.FieldViolation(
                field: $0, reason: "INVALID_CHARACTER", description: "must not contain the NUL character (U+0000)")
        }
    }

    /// Whether `text` can be stored in a PostgreSQL `text` column.
    public static func isStorable(_ text: String) -> Bool { !text.utf8.contains(0) }
}

private struct NulFinder: SwiftProtobuf.Visitor {
    let index: DescriptorIndex
    let messageName: String
    let path: String
    var found: [String] = []

    func field(_ number: Int) -> String {
        let name = index.fieldName(of: messageName, number: number) ?? "field_\(number)"
        return path.isEmpty ? name : path + "." + name
    }

    mutating func check(_ text: String, at field: String) {
        if !TextInput.isStorable(text) { found.append(field) }
    }

    mutating func descend(_ message: any SwiftProtobuf.Message, at field: String) {
        var inner = NulFinder(index: index, messageName: type(of: message).protoMessageName, path: field)
        try? message.traverse(visitor: &inner)
        found += inner.found
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

    // Numbers, booleans, bytes and enums hold no text.
    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {}
    mutating func visitSingularEnumField<E: SwiftProtobuf.Enum>(value: E, fieldNumber: Int) throws {}
    mutating func visitUnknown(bytes: Data) throws {}
}
