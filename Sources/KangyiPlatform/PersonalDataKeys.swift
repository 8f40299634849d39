import Crypto
import Foundation

/// The keys that protect personal data at rest (the tracing service's persons, call notes):
/// - the sealing key (`KANGYI_PII_KEY`, base64 of 32 bytes): AES-256-GCM seals each field under it; each
///   sealed row names its key's id, so the key can be rotated (`KANGYI_PII_RETIRED_KEYS` keeps earlier keys
///   readable until `kangyi tracing rotate-key` has re-sealed their rows);
/// - the index key (`KANGYI_PII_INDEX_KEY`, base64 of at least 32 bytes): HMAC-SHA256 under it turns a
///   phone or ID number into a blind index, so look-ups never need the plaintext in a table or an index.
/// Secrets: never logged or printed (`description` hides them).
public struct PersonalDataKeys: Sendable, CustomStringConvertible {
    public struct SealingKey: Sendable {
        let key: SymmetricKey
        /// 16 hex digits of a hash of the key: names the key in rows without revealing it.
        public let id: String

        public init?(base64: String) {
            guard let bytes = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32
            else { return nil }
            self.init(key: SymmetricKey(data: bytes))
        }

        init(key: SymmetricKey) {
            self.key = key
            let digest = key.withUnsafeBytes { SHA256.hash(data: Data("kangyi-pii-key-id:".utf8) + Data($0)) }
            id = digest.prefix(8).map { String(format: "%02x", $0) }.joined()
        }

        public static func random() -> SealingKey { SealingKey(key: SymmetricKey(size: .bits256)) }

        /// The key as the environment holds it; for writing a key file only.
        public var base64: String { key.withUnsafeBytes { Data($0).base64EncodedString() } }
    }

    public let current: SealingKey
    /// Earlier sealing keys, still accepted for opening.
    public let retired: [SealingKey]
    let index: SymmetricKey

    public init(current: SealingKey, retired: [SealingKey] = [], indexKeyBase64: String) throws(PersonalDataError) {
        guard let bytes = Data(base64Encoded: indexKeyBase64.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count >= 32
        else { throw PersonalDataError.badIndexKey }
        self.current = current
        self.retired = retired.filter { $0.id != current.id }
        index = SymmetricKey(data: bytes)
    }

    /// Fresh random keys (tests, and `kangyi dev`'s first start).
    public static func random() -> PersonalDataKeys {
        try! PersonalDataKeys(current: .random(), indexKeyBase64: SymmetricKey(size: .bits256).withUnsafeBytes {
            Data($0).base64EncodedString()
        })
    }

    /// The index key as the environment holds it; for writing a key file only.
    public var indexKeyBase64: String { index.withUnsafeBytes { Data($0).base64EncodedString() } }

    public var description: String { "PersonalDataKeys(current: \(current.id), retired: \(retired.count), ***)" }

    // MARK: Sealing

    /// `text` sealed under the current key, bound to `context` (e.g. "person/<id>/phone"): a sealed value
    /// moved to another row or field no longer opens.
    public func seal(_ text: String, context: String) -> Data {
        // AES-GCM with a fresh 96-bit nonce only fails for absurd input sizes.
        let box = try! AES.GCM.seal(Data(text.utf8), using: current.key, authenticating: Data(context.utf8))
        return box.combined!
    }

    /// Opens what `seal` made under the key named `keyID`.
    public func open(_ sealed: Data, keyID: String, context: String) throws(PersonalDataError) -> String {
        guard let key = keyID == current.id ? current : retired.first(where: { $0.id == keyID }) else {
            throw PersonalDataError.unknownKey(keyID)
        }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            let plain = try AES.GCM.open(box, using: key.key, authenticating: Data(context.utf8))
            guard let text = String(data: plain, encoding: .utf8) else { throw PersonalDataError.tampered }
            return text
        } catch {
            throw PersonalDataError.tampered
        }
    }

    // MARK: Blind index

    /// HMAC-SHA256 of `kind:value` under the index key: equal values give equal indexes, and nothing
    /// without the key leads back to the value. `value` must already be normalised.
    public func blindIndex(_ value: String, kind: String) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data("\(kind):\(value)".utf8), using: index))
    }
}

public enum PersonalDataError: Error, Sendable, CustomStringConvertible, Equatable {
    case badIndexKey
    /// A row sealed under a key this process does not have (add it to `KANGYI_PII_RETIRED_KEYS`).
    case unknownKey(String)
    /// A sealed value that does not open under its key and context.
    case tampered

    public var description: String {
        switch self {
        case .badIndexKey: "KANGYI_PII_INDEX_KEY must be base64 of at least 32 random bytes"
        case .unknownKey(let id): "personal data sealed under key \(id), which is neither KANGYI_PII_KEY nor in KANGYI_PII_RETIRED_KEYS"
        case .tampered: "sealed personal data did not open under its key (altered, or moved between rows)"
        }
    }
}
