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
                if bytes.count > maxBytes { throw ServiceError.messageTooLarge(size: bytes.count, limit: maxBytes) }
            } else if let message = message as? any SwiftProtobuf.Message {
                var scan = MessageScan(index: index)
                scan.visit(message)
                // The scan's count is a lower bound of the encoded size; encode only when it comes close.
                if scan.bytes > maxBytes / 2 {
                    let size = ((try? message.serializedBytes()) as [UInt8]?)?.count ?? 0
                    if size > maxBytes { throw ServiceError.messageTooLarge(size: size, limit: maxBytes) }
                }
                if !scan.nulFields.isEmpty {
                    throw ServiceError.invalidArgument(scan.nulFields.map { .nulCharacter(field: $0) })
                }
            }
            return message
        }
        return try await next(
            StreamingServerRequest(metadata: request.metadata, messages: RPCAsyncSequence(wrapping: checked)), context)
    }
}

/// One pass over a message and everything in it: the paths of string fields holding a NUL character,
/// and a lower bound of the encoded size (text and bytes, one per field). Field names are looked up only
/// for a field found wanting: the clean path, every call's, costs no lookups and builds no strings.
struct MessageScan: SwiftProtobuf.Visitor {
    /// Where a nested message sits: its parent's field, and its position when repeated.
    private struct Step {
        var message: any SwiftProtobuf.Message.Type
        var number: Int
        var position: Int?
    }

    private let index: DescriptorIndex
    /// The type being visited: its name is looked up only to name a field found wanting.
    private var message: any SwiftProtobuf.Message.Type = SwiftProtobuf.Google_Protobuf_Empty.self
    private var path: [Step] = []
    private(set) var nulFields: [String] = []
    private(set) var bytes = 0

    init(index: DescriptorIndex) { self.index = index }

    /// Generic rather than over `any Message`: boxing every nested message (a log's every occupant) in
    /// an existential allocated once per message.
    mutating func visit<M: SwiftProtobuf.Message>(_ message: M) {
        let outer = self.message
        self.message = M.self
        try? message.traverse(visitor: &self)
        self.message = outer
    }

    private mutating func check(_ text: String, number: Int, position: Int? = nil) {
        bytes += text.utf8.count + 1
        if text.utf8.contains(0) { nulFields.append(name(path + [Step(message: message, number: number, position: position)])) }
    }

    private mutating func descend<M: SwiftProtobuf.Message>(_ child: M, number: Int, position: Int? = nil) {
        path.append(Step(message: message, number: number, position: position))
        visit(child)
        path.removeLast()
        bytes += 1
    }

    /// `contact.name`, `items[3].note`.
    private func name(_ steps: [Step]) -> String {
        steps.map { step in
            let field = index.fieldName(of: step.message.protoMessageName, number: step.number) ?? "field_\(step.number)"
            return step.position.map { "\(field)[\($0)]" } ?? field
        }.joined(separator: ".")
    }

    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {
        check(value, number: fieldNumber)
    }

    mutating func visitRepeatedStringField(value: [String], fieldNumber: Int) throws {
        for position in value.indices { check(value[position], number: fieldNumber, position: position) }
    }

    mutating func visitSingularMessageField<M: SwiftProtobuf.Message>(value: M, fieldNumber: Int) throws {
        descend(value, number: fieldNumber)
    }

    /// Indices rather than `enumerated()`: the visitor is not specialised for `M`, and each (offset, M)
    /// pair cost a look-up of its tuple's metadata (2 % of the checkpoint server's CPU under upload).
    mutating func visitRepeatedMessageField<M: SwiftProtobuf.Message>(value: [M], fieldNumber: Int) throws {
        for position in value.indices { descend(value[position], number: fieldNumber, position: position) }
    }

    mutating func visitSingularGroupField<G: SwiftProtobuf.Message>(value: G, fieldNumber: Int) throws {
        descend(value, number: fieldNumber)
    }

    // Maps: keys and string values are checked as the entry's fields; the path names the map field.
    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: _ProtobufMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        for (key, entry) in value {
            if let key = key as? String { check(key, number: fieldNumber) }
            if let entry = entry as? String { check(entry, number: fieldNumber) }
        }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {
        for key in value.keys { if let key = key as? String { check(key, number: fieldNumber) } }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
        value: _ProtobufMessageMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws {
        for (key, entry) in value {
            if let key = key as? String { check(key, number: fieldNumber) }
            descend(entry, number: fieldNumber)
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
