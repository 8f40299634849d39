import Foundation
import GRPCCore
import KangyiAPI
@testable import KangyiIntake
import KangyiPlatform
import KangyiTestSupport
import Testing

/// One citizen's bad submission never fails anyone else's.
@Suite struct IsolationTests {
    /// 40 callers over the wire, every tenth submission carrying a NUL character (which PostgreSQL's
    /// `text` refuses): those are INVALID_ARGUMENT naming the field, every valid one is stored.
    @Test func aNulCharacterIsRefusedPreciselyAndFailsNobodyElse() async throws {
        try await IntakeHarness.run("nul") { intake in
            let server = GRPCServerService(
                name: "intake", services: [intake.service], host: "127.0.0.1", port: 0, limits: .defaults,
                metrics: RPCMetrics(), logger: TestDatabase.logger)
            try await withServiceGroup([server]) { _ in
                try await withClient(try await server.listeningAddress()) { grpc in
                    let client = Kangyi_Intake_V1_IntakeService.Client(wrapping: grpc)
                    let outcomes = try await withThrowingTaskGroup(of: (Int, RPCError?).self) { group in
                        for index in 0..<200 {
                            group.addTask {
                                var request = submission(
                                    "nul-\(index)", phone: "139\(String(format: "%08d", index))",
                                    description: "求助\(index) \(RequestID.mint())")
                                if index % 10 == 0 { request.description_p += "\u{0}" }
                                if index % 10 == 5 { request.contact.name = "张\u{0}三" }
                                do {
                                    _ = try await client.submitHelpRequest(request)
                                    return (index, nil)
                                } catch let error as RPCError {
                                    return (index, error)
                                }
                            }
                        }
                        return try await group.reduce(into: [Int: RPCError?]()) { $0[$1.0] = $1.1 }
                    }
                    for (index, error) in outcomes {
                        switch index % 10 {
                        case 0, 5:
                            #expect(error?.code == .invalidArgument, "submission \(index)")
                            let field = try error?.unpackGoogleRPCStatus()?.details.compactMap(\.badRequest).first?.violations.first?.field
                            #expect(field == (index % 10 == 0 ? "description" : "contact.name"))
                        default:
                            #expect(error == nil, "valid submission \(index) failed: \(String(describing: error))")
                        }
                    }
                }
            }
            #expect(try await intake.count() == 160)
        }
    }

    /// Defence in depth: an item the database refuses even though it passed validation fails alone in
    /// its batch — the rest of the batch is committed.
    @Test func anItemTheDatabaseRefusesFailsAloneInItsBatch() async throws {
        try await IntakeHarness.run("isolate") { intake in
            let validator = SubmissionValidator(reference: try await ReferenceData.load(from: intake.client, logger: TestDatabase.logger))
            let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for index in 0..<50 {
                    group.addTask {
                        var item = try validator.validate(
                            submission("iso-\(index)", phone: "137\(String(format: "%08d", index))", description: "第\(index)条 \(RequestID.mint())"),
                            caller: "test")
                        if index == 17 { item.address = "bad\u{0}" }  // past validation: only the database refuses it
                        do {
                            _ = try await intake.store().submit(item)
                            return (index, true)
                        } catch {
                            return (index, false)
                        }
                    }
                }
                return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(results.filter { !$0.value }.map(\.key) == [17])
            #expect(try await intake.count() == 49)
        }
    }
}
