import Logging
import PostgresNIO
import Synchronization

/// The `common` schema's reference data, read once at start-up: it changes only through migrations, so
/// services validate against this copy instead of querying it on every request.
public struct ReferenceData: Sendable {
    public struct District: Sendable, Equatable {
        public var code: String
        public var name: String
        public var nameEn: String
        public var isUrban: Bool

        public init(code: String, name: String, nameEn: String, isUrban: Bool) {
            self.code = code
            self.name = name
            self.nameEn = nameEn
            self.isUrban = isUrban
        }
    }

    public struct Department: Sendable, Equatable {
        public var code: String
        public var name: String
        public var nameEn: String

        public init(code: String, name: String, nameEn: String) {
            self.code = code
            self.name = name
            self.nameEn = nameEn
        }
    }

    public struct Category: Sendable, Equatable {
        public var code: String
        public var name: String
        public var nameEn: String
        public var defaultDepartment: String

        public init(code: String, name: String, nameEn: String, defaultDepartment: String) {
            self.code = code
            self.name = name
            self.nameEn = nameEn
            self.defaultDepartment = defaultDepartment
        }
    }

    /// In display order.
    public var districts: [District]
    public var departments: [Department]
    public var categories: [Category]

    public init(districts: [District], departments: [Department], categories: [Category]) {
        self.districts = districts
        self.departments = departments
        self.categories = categories
    }

    public func district(_ code: String) -> District? { districts.first { $0.code == code } }
    public func department(_ code: String) -> Department? { departments.first { $0.code == code } }
    public func category(_ code: String) -> Category? { categories.first { $0.code == code } }

    public static func load(from client: PostgresClient, logger: Logger) async throws -> ReferenceData {
        var districts: [District] = []
        for try await (code, name, nameEn, kind) in try await client.query(
            "SELECT code, name, name_en, kind FROM common.districts ORDER BY code", logger: logger
        ).decode((String, String, String, String).self) {
            districts.append(District(code: code, name: name, nameEn: nameEn, isUrban: kind == "urban"))
        }
        var departments: [Department] = []
        for try await (code, name, nameEn) in try await client.query(
            "SELECT code, name, name_en FROM common.departments ORDER BY code", logger: logger
        ).decode((String, String, String).self) {
            departments.append(Department(code: code, name: name, nameEn: nameEn))
        }
        var categories: [Category] = []
        for try await (code, name, nameEn, department) in try await client.query(
            "SELECT code, name, name_en, default_department FROM common.help_categories ORDER BY sort_order",
            logger: logger
        ).decode((String, String, String, String).self) {
            categories.append(Category(code: code, name: name, nameEn: nameEn, defaultDepartment: department))
        }
        return ReferenceData(districts: districts, departments: departments, categories: categories)
    }
}

/// Loads ``ReferenceData`` on first use (the pool is not running yet when services are assembled) and
/// keeps it. Two first callers at once may both load it; the result is the same.
public final class ReferenceDataCache: Sendable {
    private let client: PostgresClient
    private let logger: Logger
    private let loaded = Mutex<ReferenceData?>(nil)

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func get() async throws -> ReferenceData {
        if let data = loaded.withLock({ $0 }) { return data }
        let data = try await ReferenceData.load(from: client, logger: logger)
        loaded.withLock { $0 = data }
        return data
    }
}
