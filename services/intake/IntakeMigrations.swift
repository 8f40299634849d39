import KangyiPlatform

/// Schema `intake`: owned and written by the intake service only.
enum IntakeMigrations {
    static let all: [Migration] = [
        Migration(schema: "intake", version: 1, name: "schema", statements: ["CREATE SCHEMA IF NOT EXISTS intake"]),
        Migration(
            schema: "intake", version: 2, name: "help requests",
            statements: [
                // Tickets are what citizens quote: date + a sequence, unique by construction. Guessing one
                // gains nothing, since a look-up also needs the phone it was filed with.
                "CREATE SEQUENCE intake.ticket_seq",
                """
                CREATE TABLE intake.help_requests (
                    id uuid PRIMARY KEY,
                    ticket text NOT NULL UNIQUE,
                    -- idempotency: one row per caller and request_id; content_hash tells a retry from reuse
                    caller text NOT NULL,
                    request_id text NOT NULL,
                    content_hash text NOT NULL,
                    category text NOT NULL REFERENCES common.help_categories (code),
                    district text NOT NULL REFERENCES common.districts (code),
                    phone text NOT NULL CHECK (phone ~ '^1[3-9][0-9]{9}$'),
                    contact_name text NOT NULL DEFAULT '',
                    address text NOT NULL DEFAULT '',
                    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 4000),
                    latitude double precision CHECK (latitude BETWEEN -90 AND 90),
                    longitude double precision CHECK (longitude BETWEEN -180 AND 180),
                    special_groups text[] NOT NULL DEFAULT '{}',
                    urgency text NOT NULL CHECK (urgency IN ('routine', 'urgent', 'critical')),
                    status text NOT NULL DEFAULT 'submitted' CHECK (status IN
                        ('submitted', 'verified', 'rejected', 'duplicate', 'assigned', 'resolved', 'closed')),
                    priority integer NOT NULL,
                    green_channel boolean NOT NULL,
                    repeat_of uuid REFERENCES intake.help_requests (id),
                    repeat_count integer NOT NULL DEFAULT 0,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (caller, request_id))
                """,
                // Duplicate detection: the same phone and category recently; similar text in a category.
                "CREATE INDEX help_requests_phone_category ON intake.help_requests (phone, category, created_at)",
                "CREATE INDEX help_requests_description_trgm ON intake.help_requests USING gin (description gin_trgm_ops)",
                // The staff queue and listings: green channel, priority, age.
                """
                CREATE INDEX help_requests_queue ON intake.help_requests
                    (green_channel DESC, priority DESC, created_at, id) WHERE repeat_of IS NULL
                """,
            ]),
        Migration(
            schema: "intake", version: 3, name: "change feed, transitions, suggestions",
            statements: [
                // The change feed behind WatchHelpRequests: every insert and update stamps the row with its
                // transaction id and a sequence number. A watcher reads only rows whose transaction is older
                // than every transaction still running (pg_snapshot_xmin), in (xid, seq) order, so a row
                // that commits late can never land behind a cursor already handed out.
                "CREATE SEQUENCE intake.change_seq",
                """
                ALTER TABLE intake.help_requests
                    ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                    ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('intake.change_seq')
                """,
                "CREATE INDEX help_requests_changes ON intake.help_requests (change_xid, change_seq)",
                """
                CREATE FUNCTION intake.stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    NEW.change_xid := pg_current_xact_id();
                    NEW.change_seq := nextval('intake.change_seq');
                    NEW.updated_at := now();
                    RETURN NEW;
                END $$
                """,
                """
                CREATE TRIGGER help_requests_stamp_change BEFORE UPDATE ON intake.help_requests
                    FOR EACH ROW EXECUTE FUNCTION intake.stamp_change()
                """,
                // Status moves requested by the verification service, idempotent on transition_id.
                """
                CREATE TABLE intake.status_transitions (
                    transition_id text PRIMARY KEY,
                    help_request_id uuid NOT NULL REFERENCES intake.help_requests (id),
                    from_status text NOT NULL,
                    to_status text NOT NULL,
                    actor text NOT NULL,
                    reason text NOT NULL DEFAULT '',
                    created_at timestamptz NOT NULL DEFAULT now())
                """,
                "CREATE INDEX status_transitions_request ON intake.status_transitions (help_request_id, created_at)",
                """
                CREATE TABLE intake.suggestions (
                    id uuid PRIMARY KEY,
                    caller text NOT NULL,
                    request_id text NOT NULL,
                    content_hash text NOT NULL,
                    category text REFERENCES common.help_categories (code),
                    district text REFERENCES common.districts (code),
                    text text NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
                    phone text CHECK (phone ~ '^1[3-9][0-9]{9}$'),
                    created_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (caller, request_id))
                """,
            ]),
        Migration(
            schema: "intake", version: 4, name: "bounded repeat detection",
            statements: [
                // Text repeats are looked for among the latest requests of a category and district (a
                // bounded scan of this index), not through a trigram index whose candidates grow with the
                // day's volume and which every insert had to maintain.
                "DROP INDEX intake.help_requests_description_trgm",
                """
                CREATE INDEX help_requests_recent ON intake.help_requests (category, district, created_at DESC)
                    WHERE repeat_of IS NULL
                """,
            ]),
        Migration(
            schema: "intake", version: 5, name: "keys ready for Citus",
            statements: [
                // Every key carries the table's distribution column (deploy/citus/distribution.sql), last,
                // so each index still serves the look-ups it served. Ids and tickets are unique by
                // construction (random UUIDs, a sequence); a retried submission carries its district, so
                // (caller, request_id, district) still finds it — and look-ups by (caller, request_id) run
                // before any insert, as before.
                "ALTER TABLE intake.status_transitions DROP CONSTRAINT status_transitions_help_request_id_fkey",
                // A repeat may be of a request in another district (the same phone): no longer a foreign
                // key, which could not span districts; the store only ever links to a row it just read.
                "ALTER TABLE intake.help_requests DROP CONSTRAINT help_requests_repeat_of_fkey",
                "ALTER TABLE intake.help_requests DROP CONSTRAINT help_requests_pkey",
                "ALTER TABLE intake.help_requests ADD PRIMARY KEY (id, district)",
                "ALTER TABLE intake.help_requests DROP CONSTRAINT help_requests_ticket_key",
                "ALTER TABLE intake.help_requests ADD UNIQUE (ticket, district)",
                "ALTER TABLE intake.help_requests DROP CONSTRAINT help_requests_caller_request_id_key",
                "ALTER TABLE intake.help_requests ADD UNIQUE (caller, request_id, district)",
                "ALTER TABLE intake.status_transitions ADD COLUMN district text",
                """
                UPDATE intake.status_transitions t SET district = r.district
                FROM intake.help_requests r WHERE r.id = t.help_request_id
                """,
                "ALTER TABLE intake.status_transitions ALTER COLUMN district SET NOT NULL",
                "ALTER TABLE intake.status_transitions DROP CONSTRAINT status_transitions_pkey",
                "ALTER TABLE intake.status_transitions ADD PRIMARY KEY (transition_id, district)",
                """
                ALTER TABLE intake.status_transitions ADD FOREIGN KEY (help_request_id, district)
                    REFERENCES intake.help_requests (id, district)
                """,
                // Suggestions may name no district: they are distributed by their request id instead.
                "ALTER TABLE intake.suggestions DROP CONSTRAINT suggestions_pkey",
                "ALTER TABLE intake.suggestions ADD PRIMARY KEY (id, request_id)",
            ]),
        Migration(
            schema: "intake", version: 6, name: "cheaper repeat detection",
            statements: [
                // The same-phone look-up reads its answer off the index's first entry (it asks for the
                // earliest original by created_at, id), so the planner takes this index even before a
                // table's first ANALYZE — with no statistics it used to scan the category's whole day.
                "DROP INDEX intake.help_requests_phone_category",
                """
                CREATE INDEX help_requests_phone_originals ON intake.help_requests (phone, category, created_at, id)
                    WHERE repeat_of IS NULL
                """,
                // pg_trgm's similarity() extracts both texts' trigrams on every comparison: 30 µs a pair,
                // 50 pairs a submission, nearly all of PostgreSQL's time under load. Each row now keeps
                // its trigrams (hashed, sorted, distinct), and a comparison is one sorted-set intersection
                // (intarray's `&`): the same measure — shared / (all distinct) — at a tenth of the cost.
                // intarray is installed where pg_trgm is; no query here uses its int[] overloads of
                // @>, <@ or && (see services/intake/README.md).
                "CREATE EXTENSION IF NOT EXISTS intarray",
                """
                CREATE FUNCTION intake.trigrams(description text) RETURNS int4[]
                    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                    RETURN ARRAY(SELECT DISTINCT hashtext(t) FROM unnest(show_trgm(description)) AS t ORDER BY 1)
                """,
                """
                ALTER TABLE intake.help_requests ADD COLUMN description_trigrams int4[] NOT NULL
                    GENERATED ALWAYS AS (intake.trigrams(description)) STORED
                """,
            ]),
    ]
}
