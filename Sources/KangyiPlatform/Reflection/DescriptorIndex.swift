import Foundation
import KangyiAPI
import SwiftProtobuf

/// The proto files this binary was built from (the descriptor set `make proto` embeds), indexed by file
/// name, by fully-qualified symbol and by extension, for the reflection service.
public struct DescriptorIndex: Sendable {
    public private(set) var files: [String: Google_Protobuf_FileDescriptorProto] = [:]
    private var fileBySymbol: [String: String] = [:]
    private var fileByExtension: [ExtensionKey: String] = [:]
    private var extensionNumbers: [String: [Int32]] = [:]
    private var fieldNames: [FieldKey: String] = [:]

    private struct FieldKey: Hashable {
        var message: String
        var number: Int
    }

    private struct ExtensionKey: Hashable {
        var extendee: String
        var number: Int32
    }

    /// The index of the descriptor set embedded in KangyiAPI.
    public static let embedded: DescriptorIndex = {
        guard let data = Data(base64Encoded: KangyiDescriptorSet.base64, options: .ignoreUnknownCharacters),
            let set = try? Google_Protobuf_FileDescriptorSet(serializedBytes: data)
        else { preconditionFailure("the embedded descriptor set is corrupt; run `make proto`") }
        return DescriptorIndex(set)
    }()

    public init(_ set: Google_Protobuf_FileDescriptorSet) {
        for file in set.file {
            files[file.name] = file
            let prefix = file.package.isEmpty ? "" : file.package + "."
            for message in file.messageType { index(message, prefix: prefix, file: file.name) }
            for enumType in file.enumType { fileBySymbol[prefix + enumType.name] = file.name }
            for service in file.service {
                fileBySymbol[prefix + service.name] = file.name
                for method in service.method { fileBySymbol[prefix + service.name + "." + method.name] = file.name }
            }
            for field in file.extension { indexExtension(field, prefix: prefix, file: file.name) }
        }
    }

    private mutating func index(_ message: Google_Protobuf_DescriptorProto, prefix: String, file: String) {
        let name = prefix + message.name
        fileBySymbol[name] = file
        for field in message.field {
            fileBySymbol[name + "." + field.name] = file
            fieldNames[FieldKey(message: name, number: Int(field.number))] = field.name
        }
        for nested in message.nestedType { index(nested, prefix: name + ".", file: file) }
        for enumType in message.enumType { fileBySymbol[name + "." + enumType.name] = file }
        for field in message.extension { indexExtension(field, prefix: name + ".", file: file) }
    }

    private mutating func indexExtension(_ field: Google_Protobuf_FieldDescriptorProto, prefix: String, file: String) {
        fileBySymbol[prefix + field.name] = file
        let extendee = field.extendee.hasPrefix(".") ? String(field.extendee.dropFirst()) : field.extendee
        fileByExtension[ExtensionKey(extendee: extendee, number: field.number)] = file
        extensionNumbers[extendee, default: []].append(field.number)
    }

    public func fileName(containingSymbol symbol: String) -> String? {
        fileBySymbol[symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol]
    }

    /// The proto name of field `number` of the message `message` (fully qualified), for field paths in
    /// errors.
    public func fieldName(of message: String, number: Int) -> String? {
        fieldNames[FieldKey(message: message, number: number)]
    }

    public func fileName(extending type: String, number: Int32) -> String? {
        fileByExtension[ExtensionKey(extendee: type, number: number)]
    }

    public func extensionNumbers(of type: String) -> [Int32]? {
        guard fileBySymbol[type] != nil else { return nil }
        return (extensionNumbers[type] ?? []).sorted()
    }

    /// The file followed by everything it imports, transitively, each once, serialized; nil if unknown.
    public func serializedFileWithDependencies(_ name: String) -> [Data]? {
        guard files[name] != nil else { return nil }
        var order: [String] = []
        var pending = [name]
        while let next = pending.popLast() {
            guard !order.contains(next), let file = files[next] else { continue }
            order.append(next)
            pending.append(contentsOf: file.dependency.reversed())
        }
        return order.compactMap { try? files[$0]?.serializedBytes() }
    }
}
