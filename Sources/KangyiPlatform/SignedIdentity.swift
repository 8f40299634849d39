import Crypto
import Foundation
import GRPCCore

/// The key that signs identities between Kangyi processes (`KANGYI_IDENTITY_KEY`, base64 of at least 32
/// random bytes; every service of a deployment shares it, `kangyi dev` makes one). It is a secret: it is
/// never logged or printed.
public struct IdentityKey: Sendable, CustomStringConvertible {
    let key: SymmetricKey

    public init?(base64: String) {
        guard let bytes = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count >= 32
        else { return nil }
        key = SymmetricKey(data: bytes)
    }

    /// A fresh random key (for `kangyi dev` and tests).
    public static func random() -> IdentityKey {
        IdentityKey(key: SymmetricKey(size: .bits256))
    }

    private init(key: SymmetricKey) { self.key = key }

    /// The key as `KANGYI_IDENTITY_KEY` holds it; for writing the key file only.
    public var base64: String { key.withUnsafeBytes { Data($0).base64EncodedString() } }

    public var description: String { "IdentityKey(***)" }
}

/// An identity (caller, department, scopes, request id) as it travels between Kangyi processes: in the
/// usual metadata headers plus `x-kangyi-identity`, `v1.<expiry ms>.<HMAC-SHA256>` over those fields, the
/// expiry and the method being called. A backend believes identity headers only when the signature
/// verifies under its key, has not expired and was made for the method it is serving: a process that can
/// merely reach a backend's port cannot claim to be someone else, nor replay a signature on another
/// method, nor for long.
public enum SignedIdentity {
    public static let signatureKey = "x-kangyi-identity"
    /// How long a signature is valid. Calls are signed as they start, so this only has to cover the
    /// journey and clocks that differ a little between nodes.
    public static let lifetime: Duration = .seconds(60)
    static let skew: TimeInterval = 30

    /// Adds `identity` to `metadata`, signed for `method` (`package.Service/Method`), replacing any
    /// identity headers already there.
    public static func attach(
        _ identity: CallerIdentity, method: String, key: IdentityKey, to metadata: inout Metadata, now: Date = Date()
    ) {
        for name in [CallerIdentity.requestIDKey] + CallerIdentity.gatewayOwnedKeys { metadata.removeAllValues(forKey: name) }
        let requestID = RequestID.isWellFormed(identity.requestID) ? identity.requestID : ""
        if !requestID.isEmpty { metadata.addString(requestID, forKey: CallerIdentity.requestIDKey) }
        metadata.addString(identity.caller, forKey: CallerIdentity.callerKey)
        if !identity.department.isEmpty { metadata.addString(identity.department, forKey: CallerIdentity.departmentKey) }
        let scopes = identity.scopes.sorted().joined(separator: " ")
        if !scopes.isEmpty { metadata.addString(scopes, forKey: CallerIdentity.scopesKey) }
        let expiry = Int64((now.timeIntervalSince1970 + lifetime.inSeconds) * 1000)
        let mac = HMAC<SHA256>.authenticationCode(
            for: message(
                method: method, expiry: expiry, requestID: requestID, caller: identity.caller,
                department: identity.department, scopes: scopes),
            using: key.key)
        metadata.addString("v1.\(expiry).\(Base64URL.encode(mac))", forKey: signatureKey)
    }

    /// The identity `metadata` carries for `method`: anonymous when it claims none; the claimed one when
    /// its signature verifies; otherwise anonymous with the ``CallerIdentity/refusal`` that says why (said
    /// to the caller, so it names no secret).
    public static func verify(_ metadata: Metadata, method: String, key: IdentityKey?, now: Date = Date())
        -> CallerIdentity
    {
        let headers = Headers(metadata)
        var anonymous = CallerIdentity(requestID: headers.requestID ?? RequestID.mint())
        guard headers.claims else { return anonymous }
        func refuse(_ reason: String, _ message: String) -> CallerIdentity {
            anonymous.refusal = Refusal(reason: reason, message)
            return anonymous
        }

        guard let token = headers.signature.single else {
            return refuse("UNSIGNED_IDENTITY", "identity headers are set only by the gateway and Kangyi services")
        }
        // Split as bytes: splitting a String by Character walks grapheme clusters, a quarter of this
        // function's time (perf of intake behind the gateway).
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map { Substring($0) }
        guard parts.count == 3, parts[0] == "v1", let expiry = Int64(parts[1]), let mac = Base64URL.decode(parts[2])
        else {
            return refuse("MALFORMED_IDENTITY", "the identity signature is malformed")
        }
        guard let key else { return refuse("IDENTITY_NOT_ACCEPTED", "this server accepts no signed identities") }
        // The request id signed is the caller's own, or none: a minted one was never signed.
        let caller = headers.caller.single ?? ""
        let department = headers.department.single ?? ""
        let scopes = headers.scopes.single ?? ""
        let signed = message(
            method: method, expiry: expiry, requestID: headers.requestID ?? "", caller: caller, department: department,
            scopes: scopes)
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: key.key) else {
            return refuse("FORGED_IDENTITY", "the identity signature does not match (wrong key, method or fields)")
        }
        let now = now.timeIntervalSince1970
        let expires = Double(expiry) / 1000
        guard expires + skew > now else { return refuse("EXPIRED_IDENTITY", "the identity signature has expired") }
        guard expires <= now + lifetime.inSeconds + skew else {
            return refuse("MALFORMED_IDENTITY", "the identity signature is valid for too long")
        }
        return CallerIdentity(
            requestID: anonymous.requestID, caller: caller.isEmpty ? "anonymous" : caller, department: department,
            scopes: Set(scopes.utf8.split(separator: UInt8(ascii: " ")).map { String(Substring($0)) }))
    }

    /// Why identity headers were not believed.
    public struct Refusal: Sendable, Equatable {
        public var reason: String
        public var message: String
        init(reason: String, _ message: String) {
            self.reason = reason
            self.message = message
        }
    }

    /// The identity headers of a call, read in one pass: a backend verifies every call it serves, and
    /// looking each header up on its own scanned the whole list seven times.
    private struct Headers {
        /// A header's value, or nil when absent or repeated (a repeated claim is not believed).
        struct One {
            private(set) var single: String?
            private(set) var seen = false
            mutating func add(_ value: String) {
                single = seen ? nil : value
                seen = true
            }
        }
        /// The caller's first well-formed request id.
        var requestID: String?
        var caller = One(), department = One(), scopes = One(), signature = One()
        /// Whether any identity header is there at all.
        var claims: Bool { caller.seen || department.seen || scopes.seen || signature.seen }

        init(_ metadata: Metadata) {
            for (key, value) in metadata {
                guard case .string(let text) = value else { continue }
                switch Self.canonical(key) {
                case CallerIdentity.requestIDKey: if requestID == nil, RequestID.isWellFormed(text) { requestID = text }
                case CallerIdentity.callerKey: caller.add(text)
                case CallerIdentity.departmentKey: department.add(text)
                case CallerIdentity.scopesKey: scopes.add(text)
                case SignedIdentity.signatureKey: signature.add(text)
                default: break
                }
            }
        }

        /// The key as the switch above names it: HTTP/2 sends names in lower case, so the usual key is
        /// compared as it is; another case (an in-process call) is lowered first, as gRPC compares names.
        private static func canonical(_ key: String) -> String {
            key.utf8.contains(where: { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) ? key.lowercased() : key
        }
    }

    /// What is signed: each field with its length, so no two different sets of fields read the same.
    static func message(
        method: String, expiry: Int64, requestID: String, caller: String, department: String, scopes: String
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + method.utf8.count + requestID.utf8.count + caller.utf8.count + department.utf8.count + scopes.utf8.count)
        for (index, field) in ["v1", method, String(expiry), requestID, caller, department, scopes].enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: "\n")) }
            bytes.append(contentsOf: String(field.utf8.count).utf8)
            bytes.append(UInt8(ascii: ":"))
            bytes.append(contentsOf: field.utf8)
        }
        return bytes
    }
}
