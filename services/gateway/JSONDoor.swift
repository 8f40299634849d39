import Foundation
import GRPCCore
import GRPCProtobuf
import Hummingbird
import KangyiAPI
import KangyiPlatform
import Logging
import NIOCore
import ServiceLifecycle
import SwiftProtobuf

/// JSON over HTTP for the routed services: `POST /<package.Service>/<Method>` with a body in protobuf's
/// canonical JSON mapping; the same tokens, scopes and rate limits as the gRPC door. A unary RPC answers
/// one JSON object; a server-streaming one answers newline-delimited JSON, one message per line (an error
/// after the first message arrives as a last line `{"error": ...}`). gRPC statuses map to HTTP statuses
/// with a JSON error body carrying code, status, message and details.
public struct JSONDoor<Transport: ClientTransport>: ListeningService {
    let application: Application<RouterResponder<BasicRequestContext>>
    let boundAddress = BoundAddress()
    let openStreams: OpenStreams

    /// - Parameters:
    ///   - maxBodyBytes: the largest request body accepted (the gRPC door's message limit).
    ///   - idleTimeout: how long a connection may send nothing, waiting for a request or in the middle of
    ///     one, before it is closed; a call being answered is never cut (a watch may run for hours). Without
    ///     it a caller who sends half a request line holds a connection, and its file descriptor, forever.
    init(
        methods: [String: (method: Routes.Method, backend: BackendClients<Transport>)], identity: BearerIdentity,
        admission: Admission, metrics: RPCMetrics, host: String, port: Int, maxBodyBytes: Int, idleTimeout: Duration,
        logger: Logger
    ) {
        let types = Dictionary(
            KangyiMessageTypes.all.map { ($0.protoMessageName, $0) }, uniquingKeysWith: { first, _ in first })
        let handler = Handler(
            methods: methods, types: types, identity: identity, admission: admission,
            observer: CallObserverInterceptor(logger: logger, metrics: metrics), maxBodyBytes: maxBodyBytes, logger: logger)
        self.openStreams = admission.tokens.openStreams
        let router = Router()
        router.post(":service/:method") { request, context in try await handler.handle(request, context: context) }
        // A call's path with another method: 405 naming POST, where the router would answer 404.
        for method: HTTPRequest.Method in [.get, .head, .put, .delete, .patch] {
            router.on(":service/:method", method: method) { _, _ in Handler.postOnly }
        }
        self.application = Application(
            router: router, server: .http1(configuration: .init(idleTimeout: TimeAmount(idleTimeout))),
            configuration: .init(address: .hostname(host, port: port), serverName: "kangyi-gateway"),
            onServerRunning: boundAddress.recorder(host: host), logger: logger)
    }

    public func listeningAddress() async throws -> String { await boundAddress.get() }

    /// Until shutdown, when its newline-delimited streams (and every other stream through the gateway) are
    /// ended UNAVAILABLE (``OpenStreams``): Hummingbird's drain would wait for them to the end of the budget.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await application.run()
        } onGracefulShutdown: { [openStreams] in
            openStreams.endAll(with: OpenStreams.shuttingDown)
        }
    }

    struct Handler: Sendable {
        let methods: [String: (method: Routes.Method, backend: BackendClients<Transport>)]
        let types: [String: any SwiftProtobuf.Message.Type]
        let identity: BearerIdentity
        let admission: Admission
        /// The gRPC door's access log and metrics, so both doors record calls alike.
        let observer: CallObserverInterceptor
        let maxBodyBytes: Int
        let logger: Logger

        func handle(_ request: Request, context: BasicRequestContext) async throws -> Response {
            let start = ContinuousClock.now
            let name = "\(context.parameters.get("service") ?? "")/\(context.parameters.get("method") ?? "")"
            var metadata = Metadata()
            for field in request.headers {
                let key = field.name.canonicalName
                if key == "authorization" || key == CallerIdentity.requestIDKey || key == "grpc-timeout" {
                    metadata.addString(field.value, forKey: key)
                }
            }
            let caller = await identity.resolve(metadata)
            return await CallerIdentity.$current.withValue(caller) {
                let response: Response
                var code = "ok"
                var message: String?
                do {
                    response = try await call(name, request: request, metadata: metadata)
                } catch {
                    let status = status(of: error, method: name)
                    code = CallObserverInterceptor.name(of: status.code)
                    message = status.message
                    response = Self.errorResponse(status)
                }
                observer.finish(method: name, code: code, identity: caller, since: start, message: message, event: "http")
                var headed = response
                headed.headers[.init(CallerIdentity.requestIDKey)!] = caller.requestID
                return headed
            }
        }

        private func call(_ name: String, request: Request, metadata: Metadata) async throws -> Response {
            guard let (method, backend) = methods[name] else {
                throw RPCError(code: .unimplemented, message: "no routed method \(name)")
            }
            guard !method.clientStreaming else {
                throw RPCError(code: .unimplemented, message: "\(name) streams requests; call it over gRPC")
            }
            let holder = try await admission.admit(method: method.descriptor, metadata: metadata)
            guard let input = types[method.inputType], let output = types[method.outputType] else {
                throw RPCError(code: .internalError, message: "no message types for \(name)")
            }
            var body = request
            let bytes: ByteBuffer
            do {
                bytes = try await body.collectBody(upTo: maxBodyBytes)
            } catch is NIOTooManyBytesError {
                throw ServiceError.messageTooLarge(limit: maxBodyBytes)
            }
            let message: any SwiftProtobuf.Message
            do {
                message = bytes.readableBytes == 0 ? input.init() : try input.init(jsonUTF8Bytes: Array(buffer: bytes))
            } catch {
                throw ServiceError.invalidArgument(
                    field: "body", reason: "INVALID_JSON",
                    "not a \(method.inputType) in protobuf's JSON mapping: \(Self.whatIsWrong(error))")
            }
            let encoded: [UInt8] = try message.serializedBytes()
            let options = CallOptions.forwarding(
                timeout: GRPCTimeout.decode(metadata[stringValues: "grpc-timeout"].first(where: { _ in true }))
                    ?? (method.serverStreaming ? nil : .seconds(30)))
            let outgoing = StreamingClientRequest<[UInt8]>(metadata: [:]) { writer in try await writer.write(encoded) }

            let (call, _) = try await BackendCall.open(
                backend: backend, method: method.descriptor, request: outgoing, options: options, retryable: true)
            if !method.serverStreaming {
                let reply = try await call.messages().first ?? []
                return Self.json(try output.init(serializedBytes: reply).jsonUTF8Bytes(options: Self.jsonOptions))
            }
            // Newline-delimited JSON, written as the backend streams; ends when either side goes away (an
            // error after the first line is the last line).
            return Response(
                status: .ok, headers: [.contentType: "application/x-ndjson"],
                body: ResponseBody { [self] writer in
                    try await admission.tokens.openStreams.relaying(call, under: holder?.id) {
                        try await writeLines(of: call, as: output, method: name, to: &writer)
                    }
                })
        }

        func writeLines(
            of call: BackendCall<Transport>, as output: any SwiftProtobuf.Message.Type, method: String,
            to writer: inout any ResponseBodyWriter
        ) async throws {
            do {
                for try await message in call.stream() {
                    let line: [UInt8] = try output.init(serializedBytes: message).jsonUTF8Bytes(options: Self.jsonOptions)
                    try await writer.write(ByteBuffer(bytes: line + [UInt8(ascii: "\n")]))
                }
            } catch {
                let status = status(of: error, method: method)
                try? await writer.write(ByteBuffer(bytes: Self.errorBody(status) + [UInt8(ascii: "\n")]))
            }
            try await writer.finish(nil)
        }

        static var jsonOptions: JSONEncodingOptions { JSONEncodingOptions() }

        /// What swift-protobuf found wrong with a body, said without echoing any of it: a caller's key or
        /// value may be personal data, and this message is logged.
        static func whatIsWrong(_ error: any Error) -> String {
            guard let error = error as? JSONDecodingError else { return "unreadable" }
            return switch error {
            case .unknownField: "a field the message does not have (unknown fields are refused; names are lowerCamelCase or as in the proto)"
            case .unrecognizedEnumValue: "an enum value the contract does not have"
            case .numberRange: "a number out of its field's range"
            case .malformedNumber, .leadingZero: "a malformed number"
            case .malformedBool: "a malformed boolean"
            case .malformedString: "a malformed string"
            case .invalidUTF8: "text that is not UTF-8"
            case .malformedTimestamp: "a malformed timestamp (RFC 3339, e.g. 2026-12-07T08:00:00Z)"
            case .malformedDuration: "a malformed duration (e.g. \"1.5s\")"
            case .malformedFieldMask: "a malformed field mask"
            case .malformedMap, .unquotedMapKey: "a malformed map"
            case .illegalNull: "null where a value is required"
            case .conflictingOneOf: "two fields of one oneof"
            case .messageDepthLimit: "messages nested too deeply"
            case .truncated: "a body that ends too soon"
            case .trailingGarbage: "something after the JSON object"
            case .schemaMismatch, .missingFieldNames, .failure: "a value of the wrong JSON type, or not a JSON object"
            @unknown default: "unreadable"
            }
        }

        static var postOnly: Response {
            var response = json(
                errorBody(GoogleRPCStatus(code: .unimplemented, message: "calls are POST /<package.Service>/<Method>", details: [])),
                status: .methodNotAllowed)
            response.headers[.allow] = "POST"
            return response
        }

        static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
            Response(
                status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }

        /// The google.rpc.Status an error amounts to, mapped as the gRPC door maps it
        /// (``ErrorMappingInterceptor``): a backend's status with its details as it came, the gateway's own
        /// refusals under the method's service, anything unexpected INTERNAL and logged.
        func status(of error: any Error, method: String) -> GoogleRPCStatus {
            let domain = String(method.prefix(while: { $0 != "/" }))
            let rpc = ErrorMappingInterceptor.rpcError(for: error, domain: domain, logger: logger)
            return (try? rpc.unpackGoogleRPCStatus()) ?? GoogleRPCStatus(code: rpc.code, message: rpc.message, details: [])
        }

        static func errorResponse(_ status: GoogleRPCStatus) -> Response {
            var response = json(errorBody(status), status: HTTPStatusMapping.status(for: status.code))
            if let delay = status.details.compactMap(\.retryInfo).first?.delay {
                let seconds = max(1, Int(delay.inSeconds.rounded(.up)))
                response.headers[.retryAfter] = "\(seconds)"
            }
            return response
        }

        /// `{"error": {"code": 3, "status": "INVALID_ARGUMENT", "message": ..., "details": [...]}}`, as
        /// Google's JSON APIs write it.
        static func errorBody(_ status: GoogleRPCStatus) -> [UInt8] {
            let body: [String: Any] = [
                "error": [
                    "code": status.code.rawValue,
                    "status": CallObserverInterceptor.name(of: status.code).uppercased(),
                    "message": status.message,
                    "details": status.details.compactMap(Self.detail),
                ] as [String: Any]
            ]
            return Array((try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data())
        }

        static func detail(_ detail: ErrorDetails) -> [String: Any]? {
            if let info = detail.errorInfo {
                return ["@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": info.reason, "domain": info.domain,
                        "metadata": info.metadata]
            }
            if let request = detail.badRequest {
                return [
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": request.violations.map {
                        ["field": $0.field, "description": $0.violationDescription, "reason": $0.reason]
                    },
                ]
            }
            if let retry = detail.retryInfo {
                return ["@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "\(retry.delay.inSeconds)s"]
            }
            return nil
        }
    }
}

/// gRPC status → HTTP status, as Google's API gateways map them.
enum HTTPStatusMapping {
    static func status(for code: RPCError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument, .failedPrecondition, .outOfRange: .badRequest
        case .unauthenticated: .unauthorized
        case .permissionDenied: .forbidden
        case .notFound: .notFound
        case .alreadyExists, .aborted: .conflict
        case .resourceExhausted: .tooManyRequests
        case .cancelled: .init(code: 499, reasonPhrase: "Client Closed Request")
        case .unimplemented: .notImplemented
        case .unavailable: .serviceUnavailable
        case .deadlineExceeded: .gatewayTimeout
        default: .internalServerError
        }
    }
}
