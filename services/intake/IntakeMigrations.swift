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
        Migration(
            schema: "intake", version: 7, name: "a batch in one call, cheaper text comparison",
            statements: [
                // A group commit was six round trips (BEGIN, retry look-up, locks, repeat look-up, INSERT,
                // COMMIT) of about 0.45 ms each here: most of a lone submission's latency. This function does
                // the middle four in one call; each of its statements takes a new snapshot, so the repeat
                // look-up after the locks sees what the previous holder committed, as before. The settings
                // baked in are IntakeStore's (this migration's checksum refuses a silent change to them: a
                // change needs a new migration that replaces the function).
                // Its locks are those `PostgresConnection.lockKeys` takes (hashtext of "phone|category"
                // under SubmissionBatches.lockSpace), so a replica still on the previous version queues
                // on the same ones.
                // Items are answered by position with the row now stored under their (caller,
                // request_id): the item's own row if it was inserted (same id), else the row of an earlier
                // request or of another replica's race, which the caller compares by content hash.
                //
                // Text comparison, cheaper (intarray's `&` copied, re-sorted and intersected both arrays
                // for each of 50 candidates: a fifth of PostgreSQL's CPU under load):
                // - a new text's trigrams are extracted once, by the function, which stores them (they
                //   were extracted again for the generated column);
                // - each row keeps a 256-bit signature of its trigrams (bit = hash & 255) and their count.
                //   Every bit set in one signature and not the other stands for at least one trigram in
                //   one text and not the other, so popcount(a # b) is at most the symmetric difference D;
                //   and similarity s / (a + b - s) >= t needs D <= (a + b)(1 - t) / (1 + t). Candidates
                //   failing that bound cannot reach t and are skipped before any intersection: the same
                //   answers, at a bit_count each. Rows stored before this migration have no signature
                //   and are compared in full.
                "ALTER TABLE intake.help_requests ALTER COLUMN description_trigrams DROP EXPRESSION",
                """
                ALTER TABLE intake.help_requests
                    ADD COLUMN description_signature bit(256),
                    ADD COLUMN description_trigram_count integer
                """,
                """
                CREATE FUNCTION intake.trigram_signature(trigrams int4[]) RETURNS bit(256)
                    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                    RETURN (SELECT coalesce(bit_or(set_bit(repeat('0', 256)::bit(256), t & 255, 1)), repeat('0', 256)::bit(256))
                            FROM unnest(trigrams) AS t)
                """,
                // Any other writer — a replica still on the previous version during a rolling update, an
                // import — gets the three columns filled, and an edited description gets them again.
                """
                CREATE FUNCTION intake.fill_trigrams() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    NEW.description_trigrams := intake.trigrams(NEW.description);
                    NEW.description_signature := intake.trigram_signature(NEW.description_trigrams);
                    NEW.description_trigram_count := icount(NEW.description_trigrams);
                    RETURN NEW;
                END $$
                """,
                """
                CREATE TRIGGER help_requests_fill_trigrams BEFORE INSERT ON intake.help_requests
                    FOR EACH ROW WHEN (NEW.description_trigrams IS NULL) EXECUTE FUNCTION intake.fill_trigrams()
                """,
                """
                CREATE TRIGGER help_requests_refill_trigrams BEFORE UPDATE OF description ON intake.help_requests
                    FOR EACH ROW WHEN (OLD.description IS DISTINCT FROM NEW.description)
                    EXECUTE FUNCTION intake.fill_trigrams()
                """,
                submitBatch,
            ]),
        Migration(
            schema: "intake", version: 8, name: "a batch in one round trip",
            statements: [
                // A batch was BEGIN, the call of `intake.submit_batch`, COMMIT: three round trips, the
                // COMMIT explicit because postgres-nio completes a query at CommandComplete, before an
                // implicit transaction commits at Sync. This procedure makes the call and commits inside,
                // and CALL completes only after the procedure returned — after its COMMIT — so one round
                // trip carries the batch and its answer still follows the durable commit. (Measured, one
                // caller: 0.27 ms less a submission; 32 callers: about a tenth more a second.)
                // A procedure answers one row, so the answers come as arrays by position, holding what a
                // created item's answer needs beyond what the service sent: what the table made (ticket,
                // status, times) and what the batch changed (repeat link; an original repeated later in
                // the same batch has its repeat count and priority raised). An item's own row wins over another replica's for the same
                // (caller, request_id) (the keys carry the district under Citus, so a race can store two).
                // Called outside a transaction block: transaction control is refused inside one.
                """
                CREATE PROCEDURE intake.submit_batch_committed(
                    ids uuid[], callers text[], request_ids text[], content_hashes text[], categories text[],
                    districts text[], phones text[], contact_names text[], addresses text[], descriptions text[],
                    located boolean[], latitudes float8[], longitudes float8[], group_lists text[], urgencies text[],
                    priorities integer[], green_channels boolean[],
                    INOUT items integer[] DEFAULT NULL, INOUT stored_ids uuid[] DEFAULT NULL,
                    INOUT tickets text[] DEFAULT NULL, INOUT statuses text[] DEFAULT NULL,
                    INOUT stored_priorities integer[] DEFAULT NULL, INOUT repeat_ofs text[] DEFAULT NULL,
                    INOUT repeat_counts integer[] DEFAULT NULL, INOUT created_ats timestamptz[] DEFAULT NULL,
                    INOUT updated_ats timestamptz[] DEFAULT NULL, INOUT stored_hashes text[] DEFAULT NULL)
                LANGUAGE plpgsql AS $$
                BEGIN
                    SELECT coalesce(array_agg(a.item ORDER BY a.item), '{}'), coalesce(array_agg(a.id ORDER BY a.item), '{}'),
                           coalesce(array_agg(a.ticket ORDER BY a.item), '{}'), coalesce(array_agg(a.status ORDER BY a.item), '{}'),
                           coalesce(array_agg(a.priority ORDER BY a.item), '{}'),
                           coalesce(array_agg(a.repeat_of ORDER BY a.item), '{}'),
                           coalesce(array_agg(a.repeat_count ORDER BY a.item), '{}'),
                           coalesce(array_agg(a.created_at ORDER BY a.item), '{}'),
                           coalesce(array_agg(a.updated_at ORDER BY a.item), '{}'),
                           coalesce(array_agg(a.content_hash ORDER BY a.item), '{}')
                    INTO items, stored_ids, tickets, statuses, stored_priorities, repeat_ofs, repeat_counts, created_ats,
                         updated_ats, stored_hashes
                    FROM (SELECT DISTINCT ON (b.item) b.item, (b.request).id, (b.request).ticket, (b.request).status,
                                 (b.request).priority, coalesce((b.request).repeat_of::text, '') AS repeat_of,
                                 (b.request).repeat_count, (b.request).created_at, (b.request).updated_at,
                                 (b.request).content_hash
                          FROM intake.submit_batch(ids, callers, request_ids, content_hashes, categories, districts,
                              phones, contact_names, addresses, descriptions, located, latitudes, longitudes,
                              group_lists, urgencies, priorities, green_channels) AS b
                          ORDER BY b.item, (b.request).id = ids[b.item] DESC) a;
                    COMMIT;
                END $$
                """,
            ]),
        Migration(
            schema: "intake", version: 9, name: "trigram functions planned once a session",
            statements: [
                // A SQL function whose body has a sub-select is never inlined, and PostgreSQL parsed and
                // planned the bodies of these two again at every execution of a statement calling them:
                // once a batch, so once for every lone submission (perf of the committer's backend, one
                // caller: 18 % of its CPU in fmgr_sql, most of that parsing and planning). In PL/pgSQL the
                // same bodies are planned once a session and the plans kept. Same results; measured with
                // pgbench calling `intake.submit_batch` without waiting for the disk: one item 0.53–0.56 →
                // 0.46–0.51 ms, 25 items 4.5–4.8 → 4.4–4.6 ms.
                """
                CREATE OR REPLACE FUNCTION intake.trigrams(description text) RETURNS int4[]
                    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
                BEGIN
                    RETURN ARRAY(SELECT DISTINCT hashtext(t) FROM unnest(show_trgm(description)) AS t ORDER BY 1);
                END $$
                """,
                """
                CREATE OR REPLACE FUNCTION intake.trigram_signature(trigrams int4[]) RETURNS bit(256)
                    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
                BEGIN
                    RETURN (SELECT coalesce(bit_or(set_bit(repeat('0', 256)::bit(256), t & 255, 1)), repeat('0', 256)::bit(256))
                            FROM unnest(trigrams) AS t);
                END $$
                """,
            ]),
        Migration(
            schema: "intake", version: 10, name: "the signature's bound before any intersection",
            statements: [
                // Migration 7's signature was meant to rule most text candidates out before intarray's `&`
                // (which copies, sorts and intersects both arrays), but PostgreSQL flattened the lateral
                // sub-select and ordered the WHERE's conditions by their estimated cost: `shared > 0`, and
                // with it the intersection, ran first, for every one of the 50 candidates (EXPLAIN VERBOSE).
                // The function is the same but for that condition, now a CASE that tests the bound first, in
                // integers. The answers are the same: the bound skips only candidates that cannot reach the
                // threshold. The committer's backend CPU, a loop of calls with fsync off: a 25-item batch
                // 4.25–4.65 → 2.95–3.05 ms, one item 0.33 → 0.29–0.30 ms.
                submitBatchWithBoundFirst,
            ]),
        Migration(
            schema: "intake", version: 11, name: "the batch's statements planned once a session",
            statements: [
                // PL/pgSQL plans a statement with the call's arguments for its first five executions, then
                // keeps the generic plan only if it looks no dearer than those. For one-item batches it
                // never does: a session whose first batches were lone submissions planned the batch's
                // statements again at every call (perf of its backend: expression walking, node copying
                // and parsing at the top). The generic plans use the same indexes, item by item, whatever
                // the batch's size. Measured with pgbench from one client, fsync off, three rounds: a
                // one-item CALL 1.30–1.76 → 0.58–0.60 ms; a 25-item batch 4.6–6.3 → 4.0–5.3 ms (noise).
                // Intake's committer already forces generic plans for its whole session
                // (`IntakeStore.committerSessionSettings`, since 23 November); this makes the function do
                // so for any session that calls it — another replica's version during a rolling update,
                // an import, pgbench. In intake's own sessions the two agree, and the function's SET costs
                // nothing measurable there (one-item CALL, three alternating rounds: 0.45–0.52 ms with it,
                // 0.45–0.52 without).
                """
                ALTER FUNCTION intake.submit_batch(uuid[], text[], text[], text[], text[], text[], text[], text[],
                    text[], text[], boolean[], float8[], float8[], text[], text[], integer[], boolean[])
                    SET plan_cache_mode = force_generic_plan
                """,
            ]),
    ]

    /// `intake.submit_batch` as migration 7 created it. Its text is migration 7's checksum, and migration 10's
    /// statement is derived from it: it never changes; a change to the function is a new migration.
    private static let submitBatch = """
        CREATE FUNCTION intake.submit_batch(
            ids uuid[], callers text[], request_ids text[], content_hashes text[], categories text[],
            districts text[], phones text[], contact_names text[], addresses text[], descriptions text[],
            located boolean[], latitudes float8[], longitudes float8[], group_lists text[], urgencies text[],
            priorities integer[], green_channels boolean[])
        RETURNS TABLE (item integer, request intake.help_requests)
        LANGUAGE plpgsql AS $$
        DECLARE
            fresh integer[];   -- new to the table, and the first of their (caller, request_id) in the batch
            originals uuid[];  -- the request each inserted repeat links to, once per repeat
        BEGIN
            SELECT coalesce(array_agg(k.n ORDER BY k.n), '{}') INTO fresh
            FROM (SELECT DISTINCT ON (u.caller, u.request_id) u.caller, u.request_id, u.n
                  FROM unnest(callers, request_ids) WITH ORDINALITY AS u(caller, request_id, n)
                  ORDER BY u.caller, u.request_id, u.n) k
            WHERE NOT EXISTS (SELECT FROM intake.help_requests h
                              WHERE h.caller = k.caller AND h.request_id = k.request_id);

            -- Concurrent batches (other lanes, other replicas) with the same phone and category
            -- queue behind each other here, so each sees the other's committed original.
            PERFORM pg_advisory_xact_lock(\(SubmissionBatches.lockSpace), keys.key)
            FROM (SELECT DISTINCT hashtext(phones[i] || '|' || categories[i]) AS key
                  FROM unnest(fresh) AS i ORDER BY 1) keys;

            -- Each new item links to the earliest recent original it repeats (same phone and
            -- category, or near-identical text among the latest of its category and district), or
            -- else to what the first new item of its phone and category in this batch links to (or is).
            WITH fresh_items AS (
                SELECT t.*, intake.trigram_signature(t.trigrams) AS signature, icount(t.trigrams) AS trigram_count
                FROM (SELECT i, phones[i] AS phone, categories[i] AS category, districts[i] AS district,
                             intake.trigrams(descriptions[i]) AS trigrams
                      FROM unnest(fresh) AS i
                      OFFSET 0) t  -- not flattened: each new text's trigrams are extracted once
                OFFSET 0),
            matched AS (
                SELECT b.i, b.phone, b.category, b.trigrams, b.signature, b.trigram_count, m.id AS earliest
                FROM fresh_items b
                LEFT JOIN LATERAL (
                    SELECT c.id FROM (
                        (SELECT h.id, h.created_at FROM intake.help_requests h
                         WHERE h.phone = b.phone AND h.category = b.category AND h.repeat_of IS NULL
                           AND h.created_at > now() - interval '\(IntakeStore.repeatWindow)'
                         ORDER BY h.created_at, h.id LIMIT 1)
                        UNION ALL
                        -- Text is compared with a bounded number of recent requests, so the cost
                        -- of a submission does not grow with the day's volume.
                        (SELECT r.id, r.created_at FROM (
                            SELECT h.id, h.created_at, h.description_trigrams, h.description_signature,
                                   h.description_trigram_count
                            FROM intake.help_requests h
                            WHERE h.category = b.category AND h.district = b.district AND h.repeat_of IS NULL
                              AND h.created_at > now() - interval '\(IntakeStore.repeatWindow)'
                            ORDER BY h.created_at DESC LIMIT \(IntakeStore.textCandidates)) r
                         CROSS JOIN LATERAL (SELECT icount(r.description_trigrams & b.trigrams) AS shared
                                             WHERE r.description_signature IS NULL
                                                OR bit_count(r.description_signature # b.signature)
                                                   * (1 + \(IntakeStore.textSimilarity))
                                                   <= (1 - \(IntakeStore.textSimilarity))
                                                      * (r.description_trigram_count + b.trigram_count)) s
                         WHERE s.shared > 0 AND s.shared >= \(IntakeStore.textSimilarity)
                             * (icount(r.description_trigrams) + icount(b.trigrams) - s.shared)
                         ORDER BY r.created_at, r.id LIMIT 1)
                    ) c
                    ORDER BY c.created_at, c.id
                    LIMIT 1) m ON true),
            linked AS (
                SELECT i, trigrams, signature, trigram_count, coalesce(earliest, CASE WHEN row_number() OVER w > 1
                                               THEN first_value(coalesce(earliest, ids[i])) OVER w END) AS repeat_of
                FROM matched
                WINDOW w AS (PARTITION BY phone, category ORDER BY i)),
            inserted AS (
                -- ON CONFLICT DO NOTHING leaves out an item another replica stored a moment ago.
                INSERT INTO intake.help_requests (id, ticket, caller, request_id, content_hash, category,
                    district, phone, contact_name, address, description, latitude, longitude,
                    special_groups, urgency, priority, green_channel, repeat_of, description_trigrams,
                    description_signature, description_trigram_count)
                SELECT ids[i], 'KY' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYMMDD')
                           || lpad(nextval('intake.ticket_seq')::text, 8, '0'),
                       callers[i], request_ids[i], content_hashes[i], categories[i], districts[i], phones[i],
                       contact_names[i], addresses[i], descriptions[i],
                       CASE WHEN located[i] THEN latitudes[i] END, CASE WHEN located[i] THEN longitudes[i] END,
                       coalesce(string_to_array(nullif(group_lists[i], ''), ','), '{}'), urgencies[i],
                       priorities[i], green_channels[i], linked.repeat_of, trigrams, signature, trigram_count
                FROM linked
                ON CONFLICT (caller, request_id, district) DO NOTHING
                RETURNING help_requests.repeat_of)
            SELECT coalesce(array_agg(inserted.repeat_of ORDER BY inserted.repeat_of), '{}') INTO originals
            FROM inserted WHERE inserted.repeat_of IS NOT NULL;

            -- Each repeated request gains its repeats and the priority they bring (capped, see
            -- Priority.swift), its rows locked in id order first: two batches raising the same
            -- originals in different orders would otherwise deadlock.
            IF cardinality(originals) > 0 THEN
                PERFORM FROM intake.help_requests h WHERE h.id = ANY(originals) ORDER BY h.id FOR UPDATE;
                UPDATE intake.help_requests h
                SET priority = h.priority - LEAST(h.repeat_count * \(Priority.perRepeat), \(Priority.repeatCap))
                               + LEAST((h.repeat_count + r.n) * \(Priority.perRepeat), \(Priority.repeatCap)),
                    repeat_count = h.repeat_count + r.n
                FROM (SELECT o AS id, count(*)::integer AS n FROM unnest(originals) AS o GROUP BY o) r
                WHERE h.id = r.id;
            END IF;

            RETURN QUERY
            SELECT u.n::integer, h
            FROM unnest(callers, request_ids) WITH ORDINALITY AS u(caller, request_id, n)
            JOIN intake.help_requests h ON h.caller = u.caller AND h.request_id = u.request_id;
        END $$
        """

    /// Migration 10's statement: migration 7's function with its text candidates' condition replaced — the
    /// condition that let PostgreSQL intersect before it tested the signature's bound — and nothing else.
    private static var submitBatchWithBoundFirst: String {
        precondition(submitBatch.ranges(of: candidateConditionOfVersion7).count == 1, "migration 7's condition moved")
        return submitBatch
            .replacing("CREATE FUNCTION intake.submit_batch(", with: "CREATE OR REPLACE FUNCTION intake.submit_batch(")
            .replacing(candidateConditionOfVersion7, with: candidateConditionOfVersion10)
    }

    private static let candidateConditionOfVersion7 = """
                         CROSS JOIN LATERAL (SELECT icount(r.description_trigrams & b.trigrams) AS shared
                                             WHERE r.description_signature IS NULL
                                                OR bit_count(r.description_signature # b.signature)
                                                   * (1 + \(IntakeStore.textSimilarity))
                                                   <= (1 - \(IntakeStore.textSimilarity))
                                                      * (r.description_trigram_count + b.trigram_count)) s
                         WHERE s.shared > 0 AND s.shared >= \(IntakeStore.textSimilarity)
                             * (icount(r.description_trigrams) + icount(b.trigrams) - s.shared)
        """

    private static let candidateConditionOfVersion10 = """
                         -- The signature's bound first, the intersection only for what passes it:
                         -- a CASE, because PostgreSQL orders a WHERE's conditions by their cost.
                         WHERE CASE
                             WHEN r.description_signature IS NOT NULL
                                  AND bit_count(r.description_signature # b.signature)
                                      * (100 + \(IntakeStore.textSimilarityPercent))
                                      > (100 - \(IntakeStore.textSimilarityPercent))
                                        * (r.description_trigram_count + b.trigram_count)
                             THEN false
                             ELSE (SELECT s.shared > 0 AND s.shared >= \(IntakeStore.textSimilarity)
                                          * (icount(r.description_trigrams) + b.trigram_count - s.shared)
                                   FROM (SELECT icount(r.description_trigrams & b.trigrams) AS shared) s)
                         END
        """
}
