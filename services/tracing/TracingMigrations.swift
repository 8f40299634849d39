import KangyiPlatform

/// Schema `tracing`: owned and written by the tracing service only. No column holds a plaintext name,
/// phone, ID number, address or call note: those are sealed (bytea, AES-GCM) under the key named in the
/// row's `key_id`; phones and ID numbers are found through their blind indexes (HMAC-SHA256).
enum TracingMigrations {
    static let all: [Migration] = [
        Migration(
            schema: "tracing", version: 1, name: "persons, cases, tasks, call attempts, access log, overdue feed",
            statements: [
                "CREATE SCHEMA IF NOT EXISTS tracing",
                """
                CREATE TABLE tracing.persons (
                    id uuid PRIMARY KEY,
                    key_id text NOT NULL,
                    name_sealed bytea,
                    phone_sealed bytea,
                    id_number_sealed bytea,
                    address_sealed bytea,
                    district text REFERENCES common.districts (code),
                    phone_index bytea,
                    id_index bytea UNIQUE,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now())
                """,
                // A household may share one phone: the phone index is not unique (name tells them apart).
                "CREATE INDEX persons_phone_index ON tracing.persons (phone_index) WHERE phone_index IS NOT NULL",
                "CREATE INDEX persons_key_id ON tracing.persons (key_id)",
                """
                CREATE TABLE tracing.cases (
                    id uuid PRIMARY KEY,
                    index_person_id uuid NOT NULL REFERENCES tracing.persons (id),
                    classification text NOT NULL CHECK (classification IN ('suspected', 'confirmed')),
                    onset_date date,
                    source text NOT NULL DEFAULT '',
                    district text REFERENCES common.districts (code),
                    created_by text NOT NULL,
                    created_by_department text NOT NULL DEFAULT '',
                    request_id text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (created_by, request_id))
                """,
                // One task per person to reach: a contact of a case, or the driver of a flagged vehicle
                // (exactly once per flagged log: the terminal and its sequence are unique).
                """
                CREATE TABLE tracing.tasks (
                    id uuid PRIMARY KEY,
                    source text NOT NULL CHECK (source IN ('case_contact', 'checkpoint')),
                    case_id uuid REFERENCES tracing.cases (id),
                    person_id uuid NOT NULL REFERENCES tracing.persons (id),
                    relation text CHECK (relation IN ('household', 'close', 'casual', 'co_traveller')),
                    last_exposure date NOT NULL,
                    follow_up_until date NOT NULL,
                    district text REFERENCES common.districts (code),
                    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'following', 'closed')),
                    listed_at timestamptz NOT NULL DEFAULT now(),
                    callable_from timestamptz,
                    due_at timestamptz,
                    first_reached_at timestamptz,
                    last_reached_at timestamptz,
                    attempts integer NOT NULL DEFAULT 0,
                    attempts_to_first_reach integer,
                    symptomatic boolean NOT NULL DEFAULT false,
                    claimed_by text,
                    claim_expires_at timestamptz,
                    close_reason text CHECK (close_reason IN ('quarantine_completed', 'converted_to_case', 'lost_to_follow_up')),
                    closed_at timestamptz,
                    closed_by text,
                    close_request_id text,
                    converted_case_id uuid REFERENCES tracing.cases (id),
                    checkpoint text,
                    terminal_id text,
                    terminal_sequence bigint,
                    plate text,
                    flags text[],
                    observed_at timestamptz,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    CHECK ((source = 'case_contact') = (case_id IS NOT NULL)),
                    CHECK ((source = 'checkpoint') = (terminal_id IS NOT NULL AND terminal_sequence IS NOT NULL)),
                    CHECK ((status = 'closed') = (close_reason IS NOT NULL)),
                    CHECK ((claimed_by IS NULL) = (claim_expires_at IS NULL)),
                    UNIQUE (case_id, person_id),
                    UNIQUE (terminal_id, terminal_sequence))
                """,
                // ClaimNextCall scans the open tasks by due time; ListTasks pages by listing time.
                "CREATE INDEX tasks_open_due ON tracing.tasks (due_at, id) WHERE status <> 'closed'",
                "CREATE INDEX tasks_listed ON tracing.tasks (listed_at DESC, id DESC)",
                "CREATE INDEX tasks_claimed_by ON tracing.tasks (claimed_by) WHERE claimed_by IS NOT NULL",
                "CREATE INDEX tasks_person ON tracing.tasks (person_id)",
                // Every call and its outcome; (investigator, request_id) makes a retried record one attempt.
                """
                CREATE TABLE tracing.attempts (
                    id uuid PRIMARY KEY,
                    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
                    task_id uuid NOT NULL REFERENCES tracing.tasks (id),
                    outcome text NOT NULL CHECK (outcome IN
                        ('reached', 'no_answer', 'busy', 'wrong_number', 'refused', 'not_in_service')),
                    investigator text NOT NULL,
                    investigator_department text NOT NULL DEFAULT '',
                    request_id text NOT NULL,
                    attempted_at timestamptz NOT NULL DEFAULT now(),
                    symptoms text[] NOT NULL DEFAULT '{}',
                    temperature_decidegrees integer,
                    quarantine text CHECK (quarantine IN ('home', 'designated_facility', 'hospital', 'none')),
                    key_id text NOT NULL,
                    quarantine_location_sealed bytea,
                    note_sealed bytea,
                    next_follow_up timestamptz,
                    UNIQUE (investigator, request_id))
                """,
                "CREATE INDEX attempts_task ON tracing.attempts (task_id, seq)",
                "CREATE INDEX attempts_time ON tracing.attempts (attempted_at)",
                // Who read whose personal data unmasked. Append-only: the trigger refuses changes.
                """
                CREATE TABLE tracing.access_log (
                    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    reader text NOT NULL,
                    reader_department text NOT NULL DEFAULT '',
                    person_id uuid NOT NULL REFERENCES tracing.persons (id),
                    method text NOT NULL,
                    reason text NOT NULL,
                    request_id text NOT NULL,
                    read_at timestamptz NOT NULL DEFAULT now())
                """,
                "CREATE INDEX access_log_person ON tracing.access_log (person_id, seq DESC)",
                "CREATE INDEX access_log_reader ON tracing.access_log (reader, seq DESC)",
                """
                CREATE FUNCTION tracing.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'tracing.access_log is append-only'; END $$
                """,
                """
                CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON tracing.access_log
                FOR EACH STATEMENT EXECUTE FUNCTION tracing.refuse_change()
                """,
                // Each missed due time, once (WatchOverdue follows it by seq).
                """
                CREATE TABLE tracing.overdue (
                    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    task_id uuid NOT NULL REFERENCES tracing.tasks (id),
                    due_at timestamptz NOT NULL,
                    recorded_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (task_id, due_at))
                """,
                // Where the checkpoint flagged-vehicle feed was read up to.
                """
                CREATE TABLE tracing.checkpoint_feed (
                    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                    cursor text NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now())
                """,
            ]),
        Migration(
            schema: "tracing", version: 2, name: "keys ready for Citus: by person",
            statements: [
                // Tracing is distributed by person (deploy/citus/distribution.sql): every key of a person's
                // tasks, calls, overdue records and reads carries the person's id, last, so each index still
                // serves its look-ups. Ids and seqs are unique by construction; a retried call record names
                // the same task (so the same person), and an (investigator, request_id) look-up comes first.
                // One person per ID number is kept by a table of its own, keyed by the ID number's index.
                """
                CREATE TABLE tracing.person_ids (
                    id_index bytea PRIMARY KEY,
                    person_id uuid NOT NULL REFERENCES tracing.persons (id))
                """,
                "INSERT INTO tracing.person_ids (id_index, person_id) SELECT id_index, id FROM tracing.persons WHERE id_index IS NOT NULL",
                "ALTER TABLE tracing.persons DROP CONSTRAINT persons_id_index_key",
                "ALTER TABLE tracing.attempts DROP CONSTRAINT attempts_task_id_fkey",
                "ALTER TABLE tracing.overdue DROP CONSTRAINT overdue_task_id_fkey",
                "ALTER TABLE tracing.tasks DROP CONSTRAINT tasks_pkey",
                "ALTER TABLE tracing.tasks ADD PRIMARY KEY (id, person_id)",
                "ALTER TABLE tracing.tasks DROP CONSTRAINT tasks_terminal_id_terminal_sequence_key",
                "ALTER TABLE tracing.tasks ADD UNIQUE (terminal_id, terminal_sequence, person_id)",
                "ALTER TABLE tracing.attempts ADD COLUMN person_id uuid",
                "UPDATE tracing.attempts a SET person_id = t.person_id FROM tracing.tasks t WHERE t.id = a.task_id",
                "ALTER TABLE tracing.attempts ALTER COLUMN person_id SET NOT NULL",
                "ALTER TABLE tracing.attempts DROP CONSTRAINT attempts_pkey",
                "ALTER TABLE tracing.attempts ADD PRIMARY KEY (id, person_id)",
                "ALTER TABLE tracing.attempts DROP CONSTRAINT attempts_seq_key",
                "ALTER TABLE tracing.attempts ADD UNIQUE (seq, person_id)",
                "ALTER TABLE tracing.attempts DROP CONSTRAINT attempts_investigator_request_id_key",
                "ALTER TABLE tracing.attempts ADD UNIQUE (investigator, request_id, person_id)",
                "ALTER TABLE tracing.attempts ADD FOREIGN KEY (task_id, person_id) REFERENCES tracing.tasks (id, person_id)",
                "ALTER TABLE tracing.access_log DROP CONSTRAINT access_log_pkey",
                "ALTER TABLE tracing.access_log ADD PRIMARY KEY (seq, person_id)",
                "ALTER TABLE tracing.overdue ADD COLUMN person_id uuid",
                "UPDATE tracing.overdue o SET person_id = t.person_id FROM tracing.tasks t WHERE t.id = o.task_id",
                "ALTER TABLE tracing.overdue ALTER COLUMN person_id SET NOT NULL",
                "ALTER TABLE tracing.overdue DROP CONSTRAINT overdue_pkey",
                "ALTER TABLE tracing.overdue ADD PRIMARY KEY (seq, person_id)",
                "ALTER TABLE tracing.overdue DROP CONSTRAINT overdue_task_id_due_at_key",
                "ALTER TABLE tracing.overdue ADD UNIQUE (task_id, due_at, person_id)",
                "ALTER TABLE tracing.overdue ADD FOREIGN KEY (task_id, person_id) REFERENCES tracing.tasks (id, person_id)",
            ]),
    ]
}
