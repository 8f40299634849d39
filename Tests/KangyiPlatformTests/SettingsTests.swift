import KangyiPlatform
import Testing

@Suite struct SettingsTests {
    @Test func defaultsWhenNothingIsSet() throws {
        let settings = try Settings(environment: [:])
        #expect(settings.databaseURL == nil)
        #expect(settings.host == "127.0.0.1")
        #expect(settings.metricsPort == 9464)
        #expect(settings.logLevel == .info)
        #expect(settings.server == .defaults)
        #expect(settings.server.maxRequestBytes == 4 * 1024 * 1024)
    }

    @Test func readsEveryVariable() throws {
        let settings = try Settings(environment: [
            "KANGYI_DATABASE_URL": "postgres://kangyi:s3cret@db.internal:6543/kangyi",
            "KANGYI_GRPC_PORT": "7000", "KANGYI_METRICS_PORT": "0", "KANGYI_LOG_LEVEL": "DEBUG",
            "KANGYI_DB_POOL_SIZE": "8", "KANGYI_MAX_REQUEST_BYTES": "65536", "KANGYI_CONNECTION_MAX_AGE_S": "60",
        ])
        #expect(settings.databaseURL == DatabaseURL(host: "db.internal", port: 6543, user: "kangyi", password: "s3cret", database: "kangyi"))
        #expect(settings.grpcPort == 7000)
        #expect(settings.metricsPort == 0)
        #expect(settings.logLevel == .debug)
        #expect(settings.databasePoolSize == 8)
        #expect(settings.server.maxRequestBytes == 65536)
        #expect(settings.server.connectionMaxAge == .seconds(60))
    }

    @Test(arguments: [
        ("KANGYI_GRPC_PORT", "http", "an integer from 0 to 65535"),
        ("KANGYI_GRPC_PORT", "70000", "an integer from 0 to 65535"),
        ("KANGYI_LOG_LEVEL", "loud", "one of trace, debug"),
        ("KANGYI_DB_POOL_SIZE", "0", "an integer from 1 to 500"),
    ])
    func aBadValueNamesTheVariableAndWhatItExpects(variable: String, value: String, expected: String) {
        do {
            _ = try Settings(environment: [variable: value])
            Issue.record("\(variable)=\(value) was accepted")
        } catch {
            #expect(error.variable == variable)
            #expect(error.description.contains(expected))
        }
    }

    @Test func aBadDatabaseURLIsRefusedWithoutEchoingIt() {
        do {
            _ = try Settings(environment: ["KANGYI_DATABASE_URL": "mysql://root:hunter2@db/x"])
            Issue.record("accepted a non-postgres URL")
        } catch {
            #expect(error.variable == "KANGYI_DATABASE_URL")
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test func databaseURLHidesItsPasswordWhenPrinted() throws {
        let url = try #require(DatabaseURL("postgresql://app:p%40ss@127.0.0.1/kangyi?sslmode=disable"))
        #expect(url.password == "p@ss")
        #expect(url.port == 5432)
        #expect(url.database == "kangyi")
        #expect("\(url)" == "postgres://app:***@127.0.0.1:5432/kangyi")
    }

    @Test func tlsNeedsBothFilesOrNeither() throws {
        #expect(try Settings(environment: [:]).tls == nil)
        let both = try Settings(environment: ["KANGYI_TLS_CERT": "/c.pem", "KANGYI_TLS_KEY": "/k.pem"])
        #expect(both.tls == TLSFiles(certificatePath: "/c.pem", privateKeyPath: "/k.pem"))
        let error = #expect(throws: SettingsError.self) { try Settings(environment: ["KANGYI_TLS_CERT": "/c.pem"]) }
        #expect(error?.variable == "KANGYI_TLS_KEY")
    }
}
