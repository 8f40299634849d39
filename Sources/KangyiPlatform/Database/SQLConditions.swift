import PostgresNIO

/// A WHERE clause built from optional filters, with their bind parameters numbered as they are added.
public struct SQLConditions: Sendable {
    public init() {}

    public private(set) var bindings = PostgresBindings()
    private var conditions: [String] = []

    public mutating func bind(_ value: some PostgresEncodable & Sendable) -> String {
        try! bindings.append(value, context: .default)
        return "$\(bindings.count)"
    }

    public mutating func add(_ condition: String) { conditions.append(condition) }

    public var whereClause: String { conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") }
}
