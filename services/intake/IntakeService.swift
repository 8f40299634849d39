import GRPCCore
import KangyiAPI
import KangyiPlatform

/// `kangyi.intake.v1.IntakeService`: the RPCs, translating between the wire and the intake domain.
public struct IntakeService: Kangyi_Intake_V1_IntakeService.SimpleServiceProtocol {
    let reference: ReferenceDataCache

    public init(reference: ReferenceDataCache) {
        self.reference = reference
    }

    public func listCategories(
        request: Kangyi_Intake_V1_ListCategoriesRequest, context: ServerContext
    ) async throws -> Kangyi_Intake_V1_ListCategoriesResponse {
        let data = try await reference.get()
        return .with {
            $0.categories = data.categories.map { category in
                .with {
                    $0.code = category.code
                    $0.name = category.name
                    $0.nameEn = category.nameEn
                    $0.defaultDepartment = category.defaultDepartment
                }
            }
        }
    }
}
