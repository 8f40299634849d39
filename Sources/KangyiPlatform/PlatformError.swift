/// A failure of the platform itself (start-up, migrations, the embedded cluster), with a message meant
/// for the operator who reads it.
public struct PlatformError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}
