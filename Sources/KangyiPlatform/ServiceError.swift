import GRPCCore
import GRPCProtobuf

/// The one error type service code throws. The platform's ``ErrorMappingInterceptor`` turns it into a gRPC
/// status with `google.rpc.Status` details: an `ErrorInfo` (stable machine-readable `reason`) and, for
/// invalid input, a `BadRequest` naming each offending field. Messages must never carry personal data.
public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: RPCError.Code
    /// A stable UPPER_SNAKE_CASE reason callers can switch on (AIP-193), e.g. `INVALID_PHONE`.
    public var reason: String
    /// A developer-facing English message; no personal data.
    public var message: String
    /// Field violations, for INVALID_ARGUMENT.
    public var violations: [FieldViolation]
    /// Extra machine-readable facts for `ErrorInfo.metadata` (ids, states; never personal data).
    public var metadata: [String: String]
    /// When the caller may try again (RESOURCE_EXHAUSTED): sent as `google.rpc.RetryInfo`.
    public var retryDelay: Duration?

    public struct FieldViolation: Sendable, Equatable {
        /// The field path in the request, e.g. `contact.phone`.
        public var field: String
        /// Why the value was refused, e.g. "must be a mainland mobile number".
        public var description: String
        public var reason: String

        public init(field: String, reason: String, description: String) {
            self.field = field
            self.reason = reason
            self.description = description
        }

        /// Text PostgreSQL would refuse: the NUL character.
        public static func nulCharacter(field: String) -> FieldViolation {
            .init(field: field, reason: "INVALID_CHARACTER", description: "must not contain the NUL character (U+0000)")
        }
    }

    public init(
        code: RPCError.Code, reason: String, message: String, violations: [FieldViolation] = [],
        metadata: [String: String] = [:]
    ) {
        self.code = code
        self.reason = reason
        self.message = message
        self.violations = violations
        self.metadata = metadata
    }

    public var description: String { "\(code) \(reason): \(message)" }

    // MARK: The cases services use

    /// How many field violations one answer names, how long its message may grow (UTF-8 bytes), and how
    /// long each description (characters). A status travels in HTTP/2 trailers, whose size clients cap
    /// (grpcio refuses more than 16 KiB and may refuse more than 8 KiB; the gateway, more than 16 KiB): a
    /// request wrong in a thousand places — an upload of a thousand bad logs — is answered with its first
    /// violations, a count of the rest in the message, and the whole count as `ErrorInfo` metadata
    /// `violations`.
    public static let namedViolationsLimit = 10
    public static let summaryLimit = 1_024
    public static let descriptionLimit = 200

    /// One or more fields are invalid; the message lists them (the first ``namedViolationsLimit``).
    public static func invalidArgument(_ violations: [FieldViolation]) -> ServiceError {
        var named: [FieldViolation] = []
        var summary = ""
        for var violation in violations.prefix(namedViolationsLimit) {
            if violation.description.count > descriptionLimit {
                violation.description = violation.description.prefix(descriptionLimit - 1) + "…"
            }
            let line = "\(violation.field): \(violation.description)"
            if !named.isEmpty, summary.utf8.count + 2 + line.utf8.count > summaryLimit { break }
            summary += named.isEmpty ? line : "; \(line)"
            named.append(violation)
        }
        let reason = violations.count == 1 ? violations[0].reason : "INVALID_FIELDS"
        var error = ServiceError(code: .invalidArgument, reason: reason, message: summary, violations: named)
        if named.count < violations.count {
            error.message += "; and \(violations.count - named.count) more"
            error.metadata["violations"] = "\(violations.count)"
        }
        return error
    }

    public static func invalidArgument(field: String, reason: String, _ description: String) -> ServiceError {
        .invalidArgument([FieldViolation(field: field, reason: reason, description: description)])
    }

    public static func notFound(_ resource: String, reason: String? = nil) -> ServiceError {
        ServiceError(
            code: .notFound, reason: reason ?? "\(resource.uppercased().replacing(" ", with: "_"))_NOT_FOUND",
            message: "\(resource) not found")
    }

    /// The state machine forbids this transition; `state` names the current state.
    public static func failedPrecondition(reason: String, _ message: String, metadata: [String: String] = [:])
        -> ServiceError
    {
        ServiceError(code: .failedPrecondition, reason: reason, message: message, metadata: metadata)
    }

    public static func alreadyExists(reason: String, _ message: String) -> ServiceError {
        ServiceError(code: .alreadyExists, reason: reason, message: message)
    }

    public static func permissionDenied(reason: String, _ message: String) -> ServiceError {
        ServiceError(code: .permissionDenied, reason: reason, message: message)
    }

    public static func unauthenticated(reason: String, _ message: String) -> ServiceError {
        ServiceError(code: .unauthenticated, reason: reason, message: message)
    }

    public static func resourceExhausted(reason: String, _ message: String, retryAfter: Duration) -> ServiceError {
        var error = ServiceError(code: .resourceExhausted, reason: reason, message: message)
        error.retryDelay = retryAfter
        return error
    }

    /// A request over the size limit (`KANGYI_MAX_REQUEST_BYTES`), on either door; `size` when known.
    public static func messageTooLarge(size: Int? = nil, limit: Int) -> ServiceError {
        ServiceError(
            code: .resourceExhausted, reason: "MESSAGE_TOO_LARGE",
            message: "the request is \(size.map { "\($0) bytes" } ?? "too large"); the largest accepted is \(limit) bytes")
    }

    public static func unavailable(reason: String, _ message: String) -> ServiceError {
        ServiceError(code: .unavailable, reason: reason, message: message)
    }

    /// The `google.rpc.Status` this error travels as.
    public func googleStatus(domain: String) -> GoogleRPCStatus {
        var details: [ErrorDetails] = [.errorInfo(reason: reason, domain: domain, metadata: metadata)]
        if !violations.isEmpty {
            details.append(
                .badRequest(
                    violations: violations.map {
                        .init(field: $0.field, description: $0.description, reason: $0.reason, localizedMessage: nil)
                    }))
        }
        if let retryDelay { details.append(.retryInfo(delay: retryDelay)) }
        return GoogleRPCStatus(code: code, message: message, details: details)
    }
}

/// Collects field violations while a request is checked, so every problem is reported at once;
/// `throwIfAny()` ends the check with one INVALID_ARGUMENT.
public struct FieldViolations: Sendable {
    public private(set) var all: [ServiceError.FieldViolation] = []

    public init() {}

    public mutating func add(_ field: String, _ reason: String, _ description: String) {
        all.append(.init(field: field, reason: reason, description: description))
    }

    public var isEmpty: Bool { all.isEmpty }

    public func throwIfAny() throws {
        if !all.isEmpty { throw ServiceError.invalidArgument(all) }
    }
}
