import GRPCCore
import KangyiAPI
import KangyiIntake
import KangyiPlatform
import KangyiTestSupport
import Testing

@Suite struct ListCategoriesTests {
    @Test func listsTheSeedCategoriesInDisplayOrder() async throws {
        let url = try await TestDatabase.migrated("intakecategories", Intake.definition.migrations)
        try await withPostgresClient(url) { client in
            let service = IntakeService(reference: ReferenceDataCache(client: client, logger: TestDatabase.logger))
            let response = try await service.listCategories(request: .init(), context: .testing)
            #expect(response.categories.map(\.code) == [
                "epidemic_policy", "transport", "medical", "education", "food_supply", "health_code", "other",
            ])
            let food = try #require(response.categories.first { $0.code == "food_supply" })
            #expect(food.name == "生活物资")
            #expect(food.defaultDepartment == "commerce")
        }
    }
}
