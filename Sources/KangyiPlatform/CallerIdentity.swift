import GRPCCore

/// Who is calling and under which request id, as carried in metadata. The gateway strips these headers
/// from outside requests and sets them from the verified token, so backends can trust them; a backend's
/// own port is reachable only inside the cluster.
public struct CallerIdentity: Sendable, Equatable {
    public static let requestIDKey = "x-request-id"
    public static let callerKey = "x-kangyi-caller"
    public static let departmentKey = "x-kangyi-department"
    public static let scopesKey = "x-kangyi-scopes"
    /// Every metadata key the gateway owns; it removes them from incoming requests before forwarding.
    public static let gatewayOwnedKeys = [callerKey, departmentKey, scopesKey]

    public var requestID: String
    /// The calling system or staff member; `anonymous` when no gateway vouched for the call.
    public var caller: String
    public var department: String
    public var scopes: Set<String>

    public init(requestID: String, caller: String = "anonymous", department: String = "", scopes: Set<String> = []) {
        self.requestID = requestID
        self.caller = caller
        self.department = department
        self.scopes = scopes
    }

    public func has(scope: String) -> Bool { scopes.contains(scope) }

    /// The identity of the RPC this task is serving (set by ``RequestContextInterceptor``).
    @TaskLocal public static var current = CallerIdentity(requestID: "")

    /// Reads the identity from request metadata; mints a request id when the caller sent none.
    public init(metadata: Metadata) {
        let requestID = metadata[stringValues: Self.requestIDKey].first(where: RequestID.isWellFormed)
        let scopes = metadata[stringValues: Self.scopesKey].flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "," }) }
        self.init(
            requestID: requestID ?? RequestID.mint(),
            caller: metadata[stringValues: Self.callerKey].first(where: { _ in true }) ?? "anonymous",
            department: metadata[stringValues: Self.departmentKey].first(where: { _ in true }) ?? "",
            scopes: Set(scopes.map(String.init)))
    }
}

/// Scope names the gateway grants and services check.
public enum Scope {
    /// Read personal data (phone and ID numbers, names, addresses) unmasked.
    public static let personalData = "pii.read"
}

/// Request ids: random, 128 bits, hex.
public enum RequestID {
    /// The shape every caller-supplied id must have — `x-request-id`, idempotency keys, transition ids:
    /// 1-128 printable ASCII characters. They are echoed into logs, so nothing else is accepted.
    public static func isWellFormed(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count) && id.utf8.allSatisfy { (0x21...0x7e).contains($0) }
    }

    public static func mint() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return hex(high) + hex(low)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
