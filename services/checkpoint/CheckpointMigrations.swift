import KangyiPlatform

/// Schema `checkpoint`: owned and written by the checkpoint service only.
enum CheckpointMigrations {
    static let all: [Migration] = [
        Migration(schema: "checkpoint", version: 1, name: "schema", statements: ["CREATE SCHEMA IF NOT EXISTS checkpoint"]),
        Migration(
            schema: "checkpoint", version: 2, name: "checkpoints, terminals, risk areas, watched plates",
            statements: [
                // The district is checked against common.districts when set by RPC; the seeded exits are
                // Zhengzhou's, whose districts arrive with the city's reference data.
                """
                CREATE TABLE checkpoint.checkpoints (
                    code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
                    name text NOT NULL,
                    district text NOT NULL,
                    road text NOT NULL DEFAULT '',
                    latitude double precision CHECK (latitude BETWEEN -90 AND 90),
                    longitude double precision CHECK (longitude BETWEEN -180 AND 180),
                    updated_at timestamptz NOT NULL DEFAULT now())
                """,
                """
                INSERT INTO checkpoint.checkpoints (code, name, district, road, latitude, longitude) VALUES
                    ('ZZ-YAOJIA', '姚家收费站（郑民高速）', '410122', '郑民高速 S82', 34.7462, 114.0836),
                    ('ZZ-ZHONGMU', '中牟收费站（连霍高速）', '410122', '连霍高速 G30', 34.7190, 113.9766),
                    ('ZZ-ZHENGZHOU-N', '郑州北收费站（京港澳高速）', '410108', '京港澳高速 G4', 34.8826, 113.6712),
                    ('ZZ-AIRPORT', '机场收费站（机场高速）', '410173', '机场高速 S1', 34.5616, 113.8546)
                """,
                """
                CREATE TABLE checkpoint.terminals (
                    terminal_id text PRIMARY KEY CHECK (terminal_id ~ '^[A-Za-z0-9_-]{1,64}$'),
                    checkpoint text NOT NULL REFERENCES checkpoint.checkpoints (code),
                    label text NOT NULL DEFAULT '',
                    registered_at timestamptz NOT NULL DEFAULT now(),
                    retired_at timestamptz)
                """,
                "CREATE INDEX terminals_checkpoint ON checkpoint.terminals (checkpoint)",
                // A risk area is keyed by where and from when; setting it again changes its level or end.
                """
                CREATE TABLE checkpoint.risk_areas (
                    code text NOT NULL CHECK (code ~ '^[0-9]{6}$'),
                    effective_from timestamptz NOT NULL,
                    effective_until timestamptz CHECK (effective_until IS NULL OR effective_until > effective_from),
                    level text NOT NULL CHECK (level IN ('low', 'medium', 'high')),
                    note text NOT NULL DEFAULT '',
                    set_by text NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (code, effective_from))
                """,
                """
                CREATE TABLE checkpoint.watched_plates (
                    plate text PRIMARY KEY,
                    reason text NOT NULL,
                    watched_by text NOT NULL,
                    watched_at timestamptz NOT NULL DEFAULT now())
                """,
            ]),
        Migration(
            schema: "checkpoint", version: 3, name: "vehicle logs, partitioned by day",
            statements: [
                // Exactly once: one row per (terminal, sequence) ever accepted, with a hash of its content
                // so a resend is told from a different log under a used sequence. Kept apart from the
                // partitioned logs because a unique key there would have to include the day.
                """
                CREATE TABLE checkpoint.log_sequences (
                    checkpoint text NOT NULL,
                    terminal_id text NOT NULL,
                    sequence bigint NOT NULL CHECK (sequence > 0),
                    observed_at timestamptz NOT NULL,
                    content_hash text NOT NULL,
                    PRIMARY KEY (checkpoint, terminal_id, sequence))
                """,
                "CREATE INDEX log_sequences_observed ON checkpoint.log_sequences (observed_at)",
                // The change feed behind WatchFlaggedVehicles (see FeedCursor): transaction id and a sequence.
                "CREATE SEQUENCE checkpoint.feed_seq",
                // Partitions (vehicle_logs_YYYYMMDD, days in China Standard Time) are created ahead and
                // dropped after the retention period by the service (Partitions.swift). The checkpoint
                // leads every key: it is the distribution column when Citus takes over.
                """
                CREATE TABLE checkpoint.vehicle_logs (
                    checkpoint text NOT NULL,
                    terminal_id text NOT NULL,
                    sequence bigint NOT NULL,
                    observed_at timestamptz NOT NULL,
                    received_at timestamptz NOT NULL DEFAULT now(),
                    plate text NOT NULL,
                    plate_color text NOT NULL,
                    vehicle_type text NOT NULL,
                    direction text NOT NULL,
                    origin_code text NOT NULL DEFAULT '',
                    origin_province text NOT NULL DEFAULT '',
                    plate_region text NOT NULL DEFAULT '',
                    temperatures integer[] NOT NULL,
                    health_codes text[] NOT NULL,
                    people integer NOT NULL CHECK (people BETWEEN 1 AND 99),
                    fevers integer NOT NULL,
                    red_codes integer NOT NULL,
                    yellow_codes integer NOT NULL,
                    driver_phone text NOT NULL DEFAULT '',
                    destination_district text NOT NULL DEFAULT '',
                    risk_area boolean NOT NULL,
                    watched_plate boolean NOT NULL,
                    flagged boolean GENERATED ALWAYS AS
                        (fevers > 0 OR red_codes > 0 OR yellow_codes > 0 OR risk_area OR watched_plate) STORED,
                    feed_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                    feed_seq bigint NOT NULL DEFAULT nextval('checkpoint.feed_seq'),
                    PRIMARY KEY (checkpoint, observed_at, terminal_id, sequence)
                ) PARTITION BY RANGE (observed_at)
                """,
                "CREATE INDEX vehicle_logs_plate ON checkpoint.vehicle_logs (plate, observed_at DESC)",
                "CREATE INDEX vehicle_logs_observed ON checkpoint.vehicle_logs (observed_at DESC)",
                "CREATE INDEX vehicle_logs_feed ON checkpoint.vehicle_logs (feed_xid, feed_seq) WHERE flagged",
            ]),
        Migration(
            schema: "checkpoint", version: 4, name: "the airport exit lies in the airport economy zone",
            statements: [
                // Zhengzhou's reference data names the zone by its own identifier (common, version 2).
                "UPDATE checkpoint.checkpoints SET district = 'hangkonggang' WHERE code = 'ZZ-AIRPORT' AND district = '410173'",
            ]),
    ]
}
