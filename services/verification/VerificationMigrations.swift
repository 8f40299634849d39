import KangyiPlatform

/// Schema `verification`: owned and written by the verification service only.
enum VerificationMigrations {
    static let all: [Migration] = [
        Migration(
            schema: "verification", version: 1, name: "cases, audit trail, intake outbox, service levels",
            statements: [
                "CREATE SCHEMA IF NOT EXISTS verification",
                // Service levels per priority: the highest tier whose min_priority the case reaches (the green
                // channel always gets the top tier). Operators may retune the intervals in place.
                """
                CREATE TABLE verification.service_levels (
                    tier text PRIMARY KEY,
                    min_priority integer NOT NULL UNIQUE CHECK (min_priority >= 0),
                    verify_within interval NOT NULL CHECK (verify_within > interval '0'),
                    resolve_within interval NOT NULL CHECK (resolve_within > interval '0'))
                """,
                """
                INSERT INTO verification.service_levels (tier, min_priority, verify_within, resolve_within) VALUES
                    ('critical', 60, interval '1 hour', interval '12 hours'),
                    ('urgent', 30, interval '4 hours', interval '2 days'),
                    ('routine', 0, interval '1 day', interval '4 days')
                """,
                """
                CREATE FUNCTION verification.service_level(priority integer, green_channel boolean)
                    RETURNS verification.service_levels LANGUAGE sql STABLE AS $$
                    SELECT * FROM verification.service_levels
                    WHERE green_channel OR min_priority <= priority
                    ORDER BY min_priority DESC LIMIT 1
                $$
                """,
                // One row per help request intake has stored; the operational fields only. Contact details
                // stay in intake (staff read them there, with the personal-data scope).
                """
                CREATE TABLE verification.cases (
                    id uuid PRIMARY KEY,
                    ticket text NOT NULL,
                    category text NOT NULL REFERENCES common.help_categories (code),
                    district text NOT NULL REFERENCES common.districts (code),
                    priority integer NOT NULL,
                    green_channel boolean NOT NULL,
                    repeat_of uuid,
                    state text NOT NULL CHECK (state IN
                        ('submitted', 'verified', 'rejected', 'duplicate', 'assigned', 'resolved', 'closed')),
                    department text REFERENCES common.departments (code),
                    duplicate_of uuid REFERENCES verification.cases (id),
                    submitted_at timestamptz NOT NULL,
                    verified_at timestamptz,
                    resolved_at timestamptz,
                    closed_at timestamptz,
                    verify_due_at timestamptz NOT NULL,
                    resolve_due_at timestamptz NOT NULL,
                    claimed_by text,
                    claim_expires_at timestamptz,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    CHECK ((claimed_by IS NULL) = (claim_expires_at IS NULL)),
                    CHECK (duplicate_of IS DISTINCT FROM id))
                """,
                // ClaimNext: per state, green channel first, then priority, then the longest waiting.
                "CREATE INDEX cases_queue ON verification.cases (state, green_channel DESC, priority DESC, submitted_at, id)",
                "CREATE INDEX cases_claimed_by ON verification.cases (claimed_by) WHERE claimed_by IS NOT NULL",
                "CREATE INDEX cases_listing ON verification.cases (submitted_at DESC, id DESC)",
                "CREATE INDEX cases_verify_due ON verification.cases (verify_due_at) WHERE state = 'submitted'",
                "CREATE INDEX cases_resolve_due ON verification.cases (resolve_due_at) WHERE state IN ('verified', 'assigned')",
                "CREATE INDEX cases_verified ON verification.cases (verified_at) WHERE verified_at IS NOT NULL",
                "CREATE INDEX cases_resolved ON verification.cases (resolved_at) WHERE resolved_at IS NOT NULL",
                // The audit trail: who did what to which case, when and why. Append-only, enforced below.
                // (actor, request_id) makes every action idempotent.
                """
                CREATE TABLE verification.events (
                    id uuid PRIMARY KEY,
                    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
                    case_id uuid NOT NULL REFERENCES verification.cases (id),
                    action text NOT NULL,
                    from_state text NOT NULL,
                    to_state text NOT NULL,
                    actor text NOT NULL,
                    actor_department text NOT NULL DEFAULT '',
                    request_id text,
                    reason text NOT NULL DEFAULT '',
                    department text,
                    duplicate_of uuid,
                    reached boolean,
                    satisfaction text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (actor, request_id))
                """,
                "CREATE INDEX events_case ON verification.events (case_id, seq)",
                "CREATE INDEX events_return_visits ON verification.events (created_at) WHERE action = 'return_visit'",
                """
                CREATE FUNCTION verification.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'verification.events is append-only' USING ERRCODE = 'insufficient_privilege';
                END $$
                """,
                """
                CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON verification.events
                    FOR EACH ROW EXECUTE FUNCTION verification.refuse_change()
                """,
                """
                CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON verification.events
                    FOR EACH STATEMENT EXECUTE FUNCTION verification.refuse_change()
                """,
                // Transitions intake's public status must still show, written in the same transaction as the
                // event: delivered in order per case, idempotently (the event id is intake's transition id),
                // until intake has them. Nothing is lost when intake is down.
                """
                CREATE TABLE verification.intake_outbox (
                    event_id uuid PRIMARY KEY REFERENCES verification.events (id),
                    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
                    case_id uuid NOT NULL REFERENCES verification.cases (id),
                    to_status text NOT NULL,
                    attempts integer NOT NULL DEFAULT 0,
                    last_error text,
                    delivered_at timestamptz)
                """,
                "CREATE INDEX intake_outbox_pending ON verification.intake_outbox (case_id, seq) WHERE delivered_at IS NULL",
                // Where the follower of intake's change feed has got to (one row).
                """
                CREATE TABLE verification.intake_feed (
                    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    cursor text NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now())
                """,
                // A breach of a service-level timer, recorded once per case, timer and deadline. Rows are
                // inserted by one sweeper at a time (advisory lock), so seq order is commit order.
                """
                CREATE TABLE verification.escalations (
                    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
                    case_id uuid NOT NULL REFERENCES verification.cases (id),
                    timer text NOT NULL CHECK (timer IN ('verify', 'resolve')),
                    due_at timestamptz NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (case_id, timer, due_at))
                """,
            ]),
        Migration(
            schema: "verification", version: 2, name: "keys ready for Citus",
            statements: [
                // Every key carries the district (deploy/citus/distribution.sql), last, so each index still
                // serves the look-ups it served; a case's events, outbox rows and escalations carry their
                // case's district and refer to it by (id, district). Ids and seqs are unique by
                // construction; an action's retry names the same case, so (actor, request_id, district)
                // still finds it (and the look-up by (actor, request_id) comes first, as before).
                "ALTER TABLE verification.intake_outbox DROP CONSTRAINT intake_outbox_event_id_fkey",
                "ALTER TABLE verification.intake_outbox DROP CONSTRAINT intake_outbox_case_id_fkey",
                "ALTER TABLE verification.events DROP CONSTRAINT events_case_id_fkey",
                "ALTER TABLE verification.escalations DROP CONSTRAINT escalations_case_id_fkey",
                // A duplicate may be of a case in another district; MarkDuplicate checks that it exists.
                "ALTER TABLE verification.cases DROP CONSTRAINT cases_duplicate_of_fkey",
                "ALTER TABLE verification.cases DROP CONSTRAINT cases_pkey",
                "ALTER TABLE verification.cases ADD PRIMARY KEY (id, district)",
                "ALTER TABLE verification.events ADD COLUMN district text",
                "ALTER TABLE verification.intake_outbox ADD COLUMN district text",
                "ALTER TABLE verification.escalations ADD COLUMN district text",
                // The trail is append-only; this one step fills the new column of what it already holds.
                "ALTER TABLE verification.events DISABLE TRIGGER events_append_only",
                "UPDATE verification.events e SET district = c.district FROM verification.cases c WHERE c.id = e.case_id",
                "ALTER TABLE verification.events ENABLE TRIGGER events_append_only",
                "UPDATE verification.intake_outbox o SET district = c.district FROM verification.cases c WHERE c.id = o.case_id",
                "UPDATE verification.escalations x SET district = c.district FROM verification.cases c WHERE c.id = x.case_id",
                "ALTER TABLE verification.events ALTER COLUMN district SET NOT NULL",
                "ALTER TABLE verification.intake_outbox ALTER COLUMN district SET NOT NULL",
                "ALTER TABLE verification.escalations ALTER COLUMN district SET NOT NULL",
                "ALTER TABLE verification.events DROP CONSTRAINT events_pkey",
                "ALTER TABLE verification.events ADD PRIMARY KEY (id, district)",
                "ALTER TABLE verification.events DROP CONSTRAINT events_seq_key",
                "ALTER TABLE verification.events ADD UNIQUE (seq, district)",
                "ALTER TABLE verification.events DROP CONSTRAINT events_actor_request_id_key",
                "ALTER TABLE verification.events ADD UNIQUE (actor, request_id, district)",
                "ALTER TABLE verification.events ADD FOREIGN KEY (case_id, district) REFERENCES verification.cases (id, district)",
                "ALTER TABLE verification.intake_outbox DROP CONSTRAINT intake_outbox_pkey",
                "ALTER TABLE verification.intake_outbox ADD PRIMARY KEY (event_id, district)",
                "ALTER TABLE verification.intake_outbox DROP CONSTRAINT intake_outbox_seq_key",
                "ALTER TABLE verification.intake_outbox ADD UNIQUE (seq, district)",
                """
                ALTER TABLE verification.intake_outbox ADD FOREIGN KEY (case_id, district)
                    REFERENCES verification.cases (id, district)
                """,
                """
                ALTER TABLE verification.intake_outbox ADD FOREIGN KEY (event_id, district)
                    REFERENCES verification.events (id, district)
                """,
                "ALTER TABLE verification.escalations DROP CONSTRAINT escalations_pkey",
                "ALTER TABLE verification.escalations ADD PRIMARY KEY (id, district)",
                "ALTER TABLE verification.escalations DROP CONSTRAINT escalations_seq_key",
                "ALTER TABLE verification.escalations ADD UNIQUE (seq, district)",
                "ALTER TABLE verification.escalations DROP CONSTRAINT escalations_case_id_timer_due_at_key",
                "ALTER TABLE verification.escalations ADD UNIQUE (case_id, timer, due_at, district)",
                """
                ALTER TABLE verification.escalations ADD FOREIGN KEY (case_id, district)
                    REFERENCES verification.cases (id, district)
                """,
            ]),
    ]
}
