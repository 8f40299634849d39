import PostgresNIO

/// Bindings for a query whose SQL is assembled at run time (`PostgresQuery(unsafeSQL:binds:)`), in
/// `$1, $2, ...` order. The encodings used here (text, numbers, uuids, dates, arrays) cannot fail.
public func binds(_ values: any PostgresEncodable & Sendable...) -> PostgresBindings {
    var bindings = PostgresBindings()
    for value in values { try! bindings.append(value, context: .default) }
    return bindings
}
