import KangyiPlatform

/// Schema `gateway`: owned and written by the gateway (and `kangyi token`) only.
enum GatewayMigrations {
    static let all: [Migration] = [
        Migration(
            schema: "gateway", version: 1, name: "tokens",
            statements: [
                "CREATE SCHEMA IF NOT EXISTS gateway",
                // A token is shown once, when created; only its SHA-256 is kept.
                """
                CREATE TABLE gateway.tokens (
                    id uuid PRIMARY KEY,
                    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
                    caller text NOT NULL CHECK (caller ~ '^[A-Za-z0-9._-]{1,64}$' AND caller <> 'anonymous'),
                    department text NOT NULL DEFAULT '',
                    scopes text[] NOT NULL,
                    rate_per_second double precision NOT NULL CHECK (rate_per_second > 0),
                    burst integer NOT NULL CHECK (burst >= 1),
                    expires_at timestamptz,
                    revoked_at timestamptz,
                    created_at timestamptz NOT NULL DEFAULT now())
                """,
                "CREATE INDEX tokens_caller ON gateway.tokens (caller)",
            ]),
    ]
}
