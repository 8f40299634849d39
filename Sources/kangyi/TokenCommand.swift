import ArgumentParser
import Foundation
import KangyiGateway
import KangyiPlatform
import Logging

/// `kangyi token create|list|revoke`: the gateway's bearer tokens. A new token is printed once and
/// only its hash is stored.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage the gateway's bearer tokens (KANGYI_DATABASE_URL required).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token and print it (the only time it is shown).",
            discussion: "Kinds: \(Scopes.kinds.keys.sorted().joined(separator: ", ")). Scopes: \(Scopes.all.joined(separator: ", ")).")

        @Option(help: "Who holds it: a system or staff member (letters, digits, . _ -).")
        var caller: String?
        @Option(help: "The terminal a checkpoint-terminal token belongs to (its caller is then terminal.<ID>; it uploads only as that terminal).")
        var terminal: String?
        @Option(help: "The holder's department code.")
        var department = ""
        @Option(help: "A kind of caller, which grants that kind's scopes.")
        var kind: String?
        @Option(help: "A scope to grant (repeatable), in addition to the kind's.")
        var scope: [String] = []
        @Option(help: "Calls per second the holder may make (sustained).")
        var rate: Double = 20
        @Option(help: "Calls the holder may make at once.")
        var burst: Int = 40
        @Option(help: "Days until it expires (none: it does not).")
        var expiresInDays: Int?
        @Flag(help: "Print JSON (id, caller, scopes, token).")
        var json = false

        func validate() throws {
            if let kind, Scopes.kinds[kind] == nil {
                throw ValidationError("unknown kind \(kind); one of \(Scopes.kinds.keys.sorted().joined(separator: ", "))")
            }
            if let unknown = scope.first(where: { !Scopes.all.contains($0) }) {
                throw ValidationError("unknown scope \(unknown); one of \(Scopes.all.joined(separator: ", "))")
            }
            if kind == nil && scope.isEmpty { throw ValidationError("give --kind or at least one --scope") }
            if kind == "checkpoint-terminal" {
                guard let terminal, caller == nil else {
                    throw ValidationError("a checkpoint-terminal token names its terminal: give --terminal ID (not --caller)")
                }
                guard !terminal.isEmpty, terminal.utf8.count <= 64,
                    terminal.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
                else { throw ValidationError("--terminal: letters, digits, '-' and '_', 1-64 characters") }
            } else {
                guard terminal == nil else { throw ValidationError("--terminal is for --kind checkpoint-terminal only") }
                guard let caller, !caller.isEmpty else { throw ValidationError("give --caller") }
                guard !caller.hasPrefix("terminal.") else {
                    throw ValidationError("callers named terminal.* are checkpoint terminals: use --kind checkpoint-terminal --terminal ID")
                }
            }
            guard rate > 0, burst >= 1 else { throw ValidationError("--rate must be > 0 and --burst ≥ 1") }
        }

        func run() async throws {
            let scopes = Array(Set((kind.flatMap { Scopes.kinds[$0] } ?? []) + scope)).sorted()
            let expires = expiresInDays.map { Date().addingTimeInterval(Double($0) * 86_400) }
            let (holder, token) = try await withTokens { tokens in
                try await tokens.create(
                    caller: terminal.map { "terminal.\($0)" } ?? caller ?? "", department: department, scopes: scopes,
                    ratePerSecond: rate, burst: burst,
                    expiresAt: expires)
            }
            if json {
                let object: [String: Any] = ["id": holder.id.uuidString.lowercased(), "caller": holder.caller, "scopes": holder.scopes, "token": token]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(token)
                FileHandle.standardError.write(Data(
                    "token \(holder.id.uuidString.lowercased()) for \(holder.caller): \(holder.scopes.joined(separator: " ")); shown once\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never the tokens themselves).")

        func run() async throws {
            let holders = try await withTokens { try await $0.list() }
            let format = ISO8601DateFormatter()
            print(["id", "caller", "department", "scopes", "rate/s", "burst", "expires", "state"].joined(separator: "\t"))
            for holder in holders {
                let state = holder.revokedAt != nil ? "revoked" : (holder.expiresAt.map { $0 < Date() } == true ? "expired" : "live")
                print([
                    holder.id.uuidString.lowercased(), holder.caller, holder.department, holder.scopes.joined(separator: ","),
                    "\(holder.ratePerSecond)", "\(holder.burst)", holder.expiresAt.map(format.string(from:)) ?? "-", state,
                ].joined(separator: "\t"))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token by id (gateways stop accepting it within 10 s).")

        @Argument(help: "The token's id, from `kangyi token list`.")
        var id: String

        func run() async throws {
            guard let uuid = UUID(uuidString: id) else { throw ValidationError("not a token id: \(id)") }
            let revoked = try await withTokens { try await $0.revoke(id: uuid) }
            print(revoked ? "revoked \(id)" : "no live token \(id)")
            if !revoked { throw ExitCode(1) }
        }
    }
}

/// Runs `body` with the gateway's token store on `KANGYI_DATABASE_URL`, its schema migrated first.
func withTokens<T: Sendable>(_ body: @Sendable (TokenStore) async throws -> T) async throws -> T {
    try await withAdministrationDatabase(label: "kangyi.token", migrations: KangyiProcess.migrations(of: [Gateway.definition])) {
        try await body(TokenStore(client: $0, logger: $1))
    }
}

func withTokens<T: Sendable>(url: DatabaseURL, logger: Logger, _ body: @Sendable (TokenStore) async throws -> T) async throws -> T {
    try await withMigratedDatabase(url: url, migrations: KangyiProcess.migrations(of: [Gateway.definition]), logger: logger) {
        try await body(TokenStore(client: $0, logger: $1))
    }
}
