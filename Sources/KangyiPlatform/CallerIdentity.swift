import GRPCCore

/// Who is calling and under which request id, as carried in metadata. The gateway strips these headers
/// from outside requests and sets them from the verified token, signed (``SignedIdentity``); backends
/// believe them only with a valid signature, so reaching a backend's port is not enough to claim to be
/// someone.
public struct CallerIdentity: Sendable, Equatable {
    public static let requestIDKey = "x-request-id"
    public static let callerKey = "x-kangyi-caller"
    public static let departmentKey = "x-kangyi-department"
    public static let scopesKey = "x-kangyi-scopes"
    /// Every metadata key that claims who is calling (the signature included); the gateway removes them
    /// from incoming requests before forwarding and sets its own.
    public static let gatewayOwnedKeys = [callerKey, departmentKey, scopesKey, SignedIdentity.signatureKey]

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
        self.refusal = nil
    }

    public func has(scope: String) -> Bool { scopes.contains(scope) }

    /// The identity of the RPC this task is serving (set by ``RequestContextInterceptor``).
    @TaskLocal public static var current = CallerIdentity(requestID: "")

    /// Set when the call claimed an identity that did not verify (see ``SignedIdentity``): the identity
    /// is then anonymous and the call is refused UNAUTHENTICATED, after it has been logged.
    public var refusal: SignedIdentity.Refusal?
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

    /// The caller's well-formed `x-request-id`, or a new one.
    public static func of(_ metadata: Metadata) -> String {
        metadata[stringValues: CallerIdentity.requestIDKey].first(where: isWellFormed) ?? mint()
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

extension CallerIdentity {
    /// The caller the gateway vouched for, for an action attributed to it: an anonymous call is refused
    /// UNAUTHENTICATED with `reason` ("STAFF_IDENTITY_REQUIRED"), saying that `actions` need `who`.
    public static func vouched(reason: String, _ actions: String, need who: String) throws -> CallerIdentity {
        let identity = current
        guard identity.caller != "anonymous", !identity.caller.isEmpty else {
            throw ServiceError(
                code: .unauthenticated, reason: reason,
                message: "\(actions) need \(who) (x-kangyi-caller, set by the gateway)")
        }
        return identity
    }
}
