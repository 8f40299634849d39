import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The city a deployment serves, as the `common` schema holds it: its districts, counties and functional
/// zones, the command centre's departments, the help categories citizens choose from, and the city itself
/// (its codes and its licence-plate prefix). Services validate against a cached copy
/// (``ReferenceDataCache``); `kangyi reference load FILE` replaces it (``ReferenceDataFile``). Its JSON form
/// (snake_case keys) is the file format: `reference/zhengzhou.json` is the complete example.
public struct ReferenceData: Sendable, Equatable, Codable {
    public struct City: Sendable, Equatable, Codable {
        /// "郑州市"
        public var name: String
        public var nameEn: String
        /// The city's administrative code ("410100") and its province's ("410000").
        public var code: String
        public var province: String
        /// The province abbreviation and city letter of its licence plates ("豫A"): a plate with it is local.
        public var platePrefix: String

        public init(name: String, nameEn: String, code: String, province: String, platePrefix: String) {
            self.name = name
            self.nameEn = nameEn
            self.code = code
            self.province = province
            self.platePrefix = platePrefix
        }
    }

    public struct District: Sendable, Equatable, Codable {
        public enum Kind: String, Sendable, Codable, CaseIterable {
            /// A district of the city proper.
            case urban
            /// A county or county-level city.
            case outlying
            /// A functional zone citizens name as their district (郑东新区); its code is its own identifier.
            case zone
        }

        /// An administrative code ("410102"), or a zone's own identifier ("zhengdong").
        public var code: String
        public var name: String
        public var nameEn: String
        public var kind: Kind

        public init(code: String, name: String, nameEn: String, kind: Kind) {
            self.code = code
            self.name = name
            self.nameEn = nameEn
            self.kind = kind
        }
    }

    public struct Department: Sendable, Equatable, Codable {
        public var code: String
        public var name: String
        public var nameEn: String

        public init(code: String, name: String, nameEn: String) {
            self.code = code
            self.name = name
            self.nameEn = nameEn
        }
    }

    public struct Category: Sendable, Equatable, Codable {
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

    public var city: City?
    /// In code order.
    public var districts: [District]
    public var departments: [Department]
    /// In display order.
    public var categories: [Category]

    public init(city: City? = nil, districts: [District], departments: [Department], categories: [Category]) {
        self.city = city
        self.districts = districts
        self.departments = departments
        self.categories = categories
    }

    public func district(_ code: String) -> District? { districts.first { $0.code == code } }
    public func department(_ code: String) -> Department? { departments.first { $0.code == code } }
    public func category(_ code: String) -> Category? { categories.first { $0.code == code } }

    public static func load(from client: DatabasePool, logger: Logger) async throws -> ReferenceData {
        var districts: [District] = []
        for try await (code, name, nameEn, kind) in try await client.query(
            "SELECT code, name, name_en, kind FROM common.districts ORDER BY code", logger: logger
        ).decode((String, String, String, String).self) {
            districts.append(District(code: code, name: name, nameEn: nameEn, kind: District.Kind(rawValue: kind) ?? .outlying))
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
        var city: City?
        for try await (name, nameEn, code, province, plate) in try await client.query(
            "SELECT name, name_en, code, province, plate_prefix FROM common.city", logger: logger
        ).decode((String, String, String, String, String).self) {
            city = City(name: name, nameEn: nameEn, code: code, province: province, platePrefix: plate)
        }
        return ReferenceData(city: city, districts: districts, departments: departments, categories: categories)
    }
}

/// ``ReferenceData`` loaded on first use (the pool is not running yet when services are assembled) and
/// kept for ``lifetime``: after `kangyi reference load`, every service validates against the new data
/// within that long, without a restart. Two callers at once may both load it; the result is the same.
public final class ReferenceDataCache: Sendable {
    /// How long a loaded copy is used before the next call loads it again.
    public static let lifetime: Duration = .seconds(30)

    private let client: DatabasePool
    private let logger: Logger
    private let lifetime: Duration
    private let loaded = Mutex<(data: ReferenceData, until: ContinuousClock.Instant)?>(nil)

    public init(client: DatabasePool, logger: Logger, lifetime: Duration = ReferenceDataCache.lifetime) {
        self.client = client
        self.logger = logger
        self.lifetime = lifetime
    }

    public func get() async throws -> ReferenceData {
        if let loaded = loaded.withLock({ $0 }), loaded.until > .now { return loaded.data }
        let data = try await ReferenceData.load(from: client, logger: logger)
        let until = ContinuousClock.now + lifetime
        loaded.withLock { $0 = (data, until) }
        return data
    }
}
