import KangyiPlatform

/// Schema `pricewatch`: owned and written by the price-watch service only. Money is integer fen.
enum PriceWatchMigrations {
    static let all: [Migration] = [
        Migration(
            schema: "pricewatch", version: 1, name: "commodities, outlets, controls, observations, daily aggregates, alerts",
            statements: [
                "CREATE SCHEMA IF NOT EXISTS pricewatch",
                // A commodity's prices are compared per `unit_quantity` of its base unit (pork: 500 g).
                """
                CREATE TABLE pricewatch.commodities (
                    code text PRIMARY KEY CHECK (code ~ '^[a-z0-9_]{1,64}$'),
                    name text NOT NULL,
                    name_en text NOT NULL DEFAULT '',
                    class text NOT NULL CHECK (class IN ('protective_supplies', 'disinfectant', 'medicine', 'thermometer',
                        'grain', 'oil', 'pork', 'eggs', 'vegetables')),
                    base_unit text NOT NULL CHECK (base_unit IN ('gram', 'millilitre', 'piece')),
                    unit_quantity bigint NOT NULL CHECK (unit_quantity BETWEEN 1 AND 1000000),
                    epidemic_related boolean NOT NULL DEFAULT false,
                    updated_at timestamptz NOT NULL DEFAULT now())
                """,
                """
                INSERT INTO pricewatch.commodities (code, name, name_en, class, base_unit, unit_quantity, epidemic_related) VALUES
                    ('mask_medical', '医用外科口罩', 'Surgical mask', 'protective_supplies', 'piece', 1, true),
                    ('mask_n95', 'N95 口罩', 'N95 respirator', 'protective_supplies', 'piece', 1, true),
                    ('alcohol_75', '75% 酒精', '75% alcohol', 'disinfectant', 'millilitre', 500, true),
                    ('hand_sanitiser', '免洗洗手液', 'Hand sanitiser', 'disinfectant', 'millilitre', 500, true),
                    ('lianhua_qingwen', '连花清瘟胶囊', 'Lianhua Qingwen capsules', 'medicine', 'piece', 24, true),
                    ('ibuprofen', '布洛芬缓释胶囊', 'Ibuprofen capsules', 'medicine', 'piece', 20, true),
                    ('thermometer_ir', '红外额温枪', 'Infrared thermometer', 'thermometer', 'piece', 1, true),
                    ('rice', '大米', 'Rice', 'grain', 'gram', 500, false),
                    ('flour', '面粉', 'Wheat flour', 'grain', 'gram', 500, false),
                    ('soybean_oil', '大豆油', 'Soybean oil', 'oil', 'millilitre', 5000, false),
                    ('pork', '猪肉（精瘦肉）', 'Pork (lean)', 'pork', 'gram', 500, false),
                    ('eggs', '鸡蛋', 'Eggs', 'eggs', 'gram', 500, false),
                    ('cabbage', '大白菜', 'Chinese cabbage', 'vegetables', 'gram', 500, false),
                    ('potato', '土豆', 'Potato', 'vegetables', 'gram', 500, false)
                """,
                // How far above its baseline a class may rise before it is an alert (city emergency price plans).
                """
                CREATE TABLE pricewatch.class_thresholds (
                    class text PRIMARY KEY,
                    rise_over_baseline numeric(6, 4) NOT NULL CHECK (rise_over_baseline > 0))
                """,
                """
                INSERT INTO pricewatch.class_thresholds (class, rise_over_baseline) VALUES
                    ('protective_supplies', 0.10), ('disinfectant', 0.10), ('medicine', 0.10), ('thermometer', 0.10),
                    ('grain', 0.05), ('oil', 0.05), ('pork', 0.05), ('eggs', 0.05), ('vegetables', 0.10)
                """,
                """
                CREATE TABLE pricewatch.outlets (
                    code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
                    name text NOT NULL,
                    kind text NOT NULL CHECK (kind IN ('shop', 'pharmacy', 'supermarket', 'wet_market_stall')),
                    district text NOT NULL REFERENCES common.districts (code),
                    licence_number text NOT NULL DEFAULT '',
                    updated_at timestamptz NOT NULL DEFAULT now())
                """,
                """
                CREATE TABLE pricewatch.baselines (
                    district text NOT NULL REFERENCES common.districts (code),
                    commodity text NOT NULL REFERENCES pricewatch.commodities (code),
                    price_fen bigint NOT NULL CHECK (price_fen > 0),
                    computed boolean NOT NULL,
                    window_start timestamptz,
                    window_end timestamptz,
                    observations bigint NOT NULL DEFAULT 0,
                    set_by text NOT NULL,
                    set_by_department text NOT NULL DEFAULT '',
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (district, commodity))
                """,
                """
                CREATE TABLE pricewatch.price_controls (
                    id uuid PRIMARY KEY,
                    kind text NOT NULL CHECK (kind IN ('ceiling', 'markup_cap', 'freeze')),
                    commodity text REFERENCES pricewatch.commodities (code),
                    class text,
                    district text REFERENCES common.districts (code),
                    ceiling_fen bigint CHECK (ceiling_fen > 0),
                    max_markup numeric(8, 4) CHECK (max_markup >= 0),
                    effective_from timestamptz NOT NULL,
                    effective_until timestamptz,
                    note text NOT NULL DEFAULT '',
                    set_by text NOT NULL,
                    set_by_department text NOT NULL DEFAULT '',
                    ended_at timestamptz,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    CHECK ((commodity IS NULL) <> (class IS NULL)),
                    CHECK ((kind = 'ceiling') = (ceiling_fen IS NOT NULL)),
                    CHECK ((kind = 'markup_cap') = (max_markup IS NOT NULL)),
                    CHECK (effective_until IS NULL OR effective_until > effective_from))
                """,
                // Exactly once per (submitter, observation id), whatever month the observation falls in.
                """
                CREATE TABLE pricewatch.observation_keys (
                    submitter text NOT NULL,
                    observation_id text NOT NULL,
                    district text NOT NULL,
                    observed_at timestamptz NOT NULL,
                    content_hash text NOT NULL,
                    PRIMARY KEY (submitter, observation_id))
                """,
                // Monthly partitions (China Standard Time), made as observations need them.
                """
                CREATE TABLE pricewatch.observations (
                    district text NOT NULL,
                    commodity text NOT NULL,
                    outlet text NOT NULL,
                    observed_at timestamptz NOT NULL,
                    submitter text NOT NULL,
                    observation_id text NOT NULL,
                    source text NOT NULL CHECK (source IN ('inspector', 'outlet_feed', 'citizen_complaint')),
                    price_fen bigint NOT NULL CHECK (price_fen > 0),
                    quantity bigint NOT NULL CHECK (quantity > 0),
                    purchase_cost_fen bigint NOT NULL DEFAULT 0 CHECK (purchase_cost_fen >= 0),
                    unit_price_fen bigint NOT NULL,
                    unit_cost_fen bigint NOT NULL DEFAULT 0,
                    received_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (district, observed_at, submitter, observation_id)
                ) PARTITION BY RANGE (observed_at)
                """,
                "CREATE INDEX observations_outlet ON pricewatch.observations (outlet, commodity, observed_at DESC)",
                "CREATE INDEX observations_commodity ON pricewatch.observations (commodity, district, observed_at DESC)",
                // Every unit price of a (district, commodity, day), kept as observations commit: series and
                // indicators read these, never the observations.
                """
                CREATE TABLE pricewatch.daily_prices (
                    district text NOT NULL,
                    commodity text NOT NULL,
                    day date NOT NULL,
                    count integer NOT NULL,
                    prices bigint[] NOT NULL,
                    PRIMARY KEY (district, commodity, day))
                """,
                "CREATE INDEX daily_prices_commodity ON pricewatch.daily_prices (commodity, day)",
                """
                CREATE TABLE pricewatch.alerts (
                    id uuid PRIMARY KEY,
                    feed_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                    feed_seq bigint GENERATED ALWAYS AS IDENTITY,
                    kind text NOT NULL,
                    status text NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'acknowledged', 'dismissed', 'referred', 'closed')),
                    commodity text NOT NULL,
                    outlet text NOT NULL,
                    district text NOT NULL,
                    submitter text NOT NULL,
                    observation_id text NOT NULL,
                    observed_at timestamptz NOT NULL,
                    figures jsonb NOT NULL,
                    price_control_id uuid,
                    case_number text,
                    outcome text CHECK (outcome IN ('warning', 'fine', 'no_violation')),
                    fine_fen bigint,
                    dismiss_reason text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (submitter, observation_id, kind))
                """,
                "CREATE INDEX alerts_feed ON pricewatch.alerts (feed_xid, feed_seq)",
                "CREATE INDEX alerts_listing ON pricewatch.alerts (created_at DESC, id DESC)",
                "CREATE INDEX alerts_outlet ON pricewatch.alerts (outlet, created_at DESC)",
                """
                CREATE TABLE pricewatch.alert_events (
                    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    alert_id uuid NOT NULL REFERENCES pricewatch.alerts (id),
                    action text NOT NULL,
                    from_status text NOT NULL,
                    to_status text NOT NULL,
                    actor text NOT NULL,
                    actor_department text NOT NULL DEFAULT '',
                    note text NOT NULL DEFAULT '',
                    request_id text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (actor, request_id))
                """,
                "CREATE INDEX alert_events_alert ON pricewatch.alert_events (alert_id, seq)",
                """
                CREATE FUNCTION pricewatch.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'pricewatch.alert_events is append-only'; END $$
                """,
                """
                CREATE TRIGGER alert_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON pricewatch.alert_events
                FOR EACH STATEMENT EXECUTE FUNCTION pricewatch.refuse_change()
                """,
            ]),
        Migration(
            schema: "pricewatch", version: 2, name: "price controls idempotent on (setter, request id)",
            statements: [
                "ALTER TABLE pricewatch.price_controls ADD COLUMN request_id text",
                "CREATE UNIQUE INDEX price_controls_request ON pricewatch.price_controls (set_by, request_id)",
            ]),
        Migration(
            schema: "pricewatch", version: 3, name: "alert keys ready for Citus",
            statements: [
                // Alerts and their audit trail carry the district in every key (deploy/citus/distribution.sql),
                // last, so each index still serves its look-ups. An observation's district is fixed, so
                // (submitter, observation_id, kind, district) is the alert's identity as before; a retried
                // change names the same alert, so (actor, request_id, district) still finds it.
                "ALTER TABLE pricewatch.alert_events DROP CONSTRAINT alert_events_alert_id_fkey",
                "ALTER TABLE pricewatch.alerts DROP CONSTRAINT alerts_pkey",
                "ALTER TABLE pricewatch.alerts ADD PRIMARY KEY (id, district)",
                "ALTER TABLE pricewatch.alerts DROP CONSTRAINT alerts_submitter_observation_id_kind_key",
                "ALTER TABLE pricewatch.alerts ADD UNIQUE (submitter, observation_id, kind, district)",
                "ALTER TABLE pricewatch.alert_events ADD COLUMN district text",
                // The trail is append-only; this one step fills the new column of what it already holds.
                "ALTER TABLE pricewatch.alert_events DISABLE TRIGGER alert_events_append_only",
                "UPDATE pricewatch.alert_events e SET district = a.district FROM pricewatch.alerts a WHERE a.id = e.alert_id",
                "ALTER TABLE pricewatch.alert_events ENABLE TRIGGER alert_events_append_only",
                "ALTER TABLE pricewatch.alert_events ALTER COLUMN district SET NOT NULL",
                "ALTER TABLE pricewatch.alert_events DROP CONSTRAINT alert_events_pkey",
                "ALTER TABLE pricewatch.alert_events ADD PRIMARY KEY (seq, district)",
                "ALTER TABLE pricewatch.alert_events DROP CONSTRAINT alert_events_actor_request_id_key",
                "ALTER TABLE pricewatch.alert_events ADD UNIQUE (actor, request_id, district)",
                """
                ALTER TABLE pricewatch.alert_events ADD FOREIGN KEY (alert_id, district)
                    REFERENCES pricewatch.alerts (id, district)
                """,
            ]),
        Migration(
            schema: "pricewatch", version: 4, name: "day aggregates in bounded chunks",
            statements: [
                // One row per day meant every batch rewrote the day's whole price array (TOAST): ingest slowed
                // as the day filled. A day's prices now lie in chunks of about ObservationBatches.chunkSize;
                // a batch appends to the day's last chunk, so what it rewrites is bounded. Readers take every
                // chunk of a day.
                "ALTER TABLE pricewatch.daily_prices ADD COLUMN chunk integer NOT NULL DEFAULT 0",
                "ALTER TABLE pricewatch.daily_prices DROP CONSTRAINT daily_prices_pkey",
                "ALTER TABLE pricewatch.daily_prices ADD PRIMARY KEY (district, commodity, day, chunk)",
            ]),
    ]
}
