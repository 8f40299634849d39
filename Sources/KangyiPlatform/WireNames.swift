/// A wire enum's stored names, both ways.
public struct WireNames<Wire: Hashable & Sendable>: Sendable {
    public let names: [Wire: String]
    public let wires: [String: Wire]

    public init(_ names: [Wire: String]) {
        self.names = names
        self.wires = Dictionary(uniqueKeysWithValues: names.map { ($1, $0) })
    }

    public func name(_ wire: Wire) -> String? { names[wire] }
    public func wire(_ name: String) -> Wire? { wires[name] }
}
