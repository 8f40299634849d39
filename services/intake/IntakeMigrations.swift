import KangyiPlatform

/// Schema `intake`: owned and written by the intake service only.
enum IntakeMigrations {
    static let all: [Migration] = [
        Migration(schema: "intake", version: 1, name: "schema", statements: ["CREATE SCHEMA IF NOT EXISTS intake"])
    ]
}
