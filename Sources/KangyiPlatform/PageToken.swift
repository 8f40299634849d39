import Foundation

/// AIP-158 paging, the same in every service. Page tokens are opaque to callers: base64 JSON of where the
/// last page ended and a fingerprint of the filter it served, so a token cannot be replayed against
/// another filter.
public enum PageToken {
    private struct Contents<Key: Codable>: Codable {
        var key: Key
        var filter: String
    }

    public static func encode<Key: Codable>(_ key: Key, fingerprint: String) -> String {
        let data = (try? JSONEncoder().encode(Contents(key: key, filter: fingerprint))) ?? Data()
        return data.base64EncodedString()
    }

    /// The key a token carries; nil for the empty token (the first page).
    public static func decode<Key: Codable>(_ token: String, as: Key.Type, fingerprint: String) throws -> Key? {
        guard !token.isEmpty else { return nil }
        guard let data = Data(base64Encoded: token), let contents = try? JSONDecoder().decode(Contents<Key>.self, from: data)
        else {
            throw ServiceError.invalidArgument(field: "page_token", reason: "INVALID_PAGE_TOKEN", "not a page token this service issued")
        }
        guard contents.filter == fingerprint else {
            throw ServiceError.invalidArgument(
                field: "page_token", reason: "PAGE_TOKEN_MISMATCH", "the filters changed since this page token was issued")
        }
        return contents.key
    }

    /// The page size asked for: 1-500, 0 meaning 50.
    public static func pageSize(_ requested: Int32) throws -> Int {
        guard (0...500).contains(requested) else {
            throw ServiceError.invalidArgument(field: "page_size", reason: "PAGE_SIZE_OUT_OF_RANGE", "must be 0-500 (0 means 50)")
        }
        return requested == 0 ? 50 : Int(requested)
    }
}
