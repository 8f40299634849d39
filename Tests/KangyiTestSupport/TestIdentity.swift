import Foundation
import GRPCCore
import KangyiPlatform

/// The identity key of this test process: servers under test believe identities signed with it, and
/// peer clients sign with it, as every service of a deployment shares `KANGYI_IDENTITY_KEY`.
public enum TestIdentity {
    public static let key = IdentityKey.random()

    /// Metadata claiming `identity` for `method`, signed as the gateway would sign it.
    public static func metadata(
        _ identity: CallerIdentity, for method: MethodDescriptor, key: IdentityKey = key, now: Date = Date()
    ) -> Metadata {
        var metadata = Metadata()
        SignedIdentity.attach(identity, method: method.fullyQualifiedMethod, key: key, to: &metadata, now: now)
        return metadata
    }
}
