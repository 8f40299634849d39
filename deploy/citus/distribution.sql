-- The plan for Citus (distributed PostgreSQL), for the day one primary's write path is full: every Kangyi
-- table, distributed by the column its rows are found by, or replicated to every node as a reference
-- table. Run on the coordinator after `kangyi migrate`, as the database owner. `make test` checks this
-- file against PostgreSQL's catalog (Tests/Deploy/test_citus_plan.py): every table is planned, and a
-- distributed table's distribution column is part of its primary key and of every unique constraint.
-- deploy/README.md says what changes for each service under Citus.
--
-- A table marked `-- not ready:` would not pass that check yet (the note says which key lacks the column);
-- the check fails if a marked table passes (remove the mark) or an unmarked one fails. None is marked.

CREATE EXTENSION IF NOT EXISTS citus;

-- Foreign keys Citus cannot keep (a replicated table referring to a distributed one; tables spread by
-- different columns): the services write both sides in one transaction, so these only double-check.
ALTER TABLE tracing.cases DROP CONSTRAINT cases_index_person_id_fkey;
ALTER TABLE tracing.person_ids DROP CONSTRAINT person_ids_person_id_fkey;

-- Shared, small, read everywhere: replicated to every node.
SELECT create_reference_table('common.districts');
SELECT create_reference_table('common.departments');
SELECT create_reference_table('common.help_categories');
SELECT create_reference_table('common.city');
SELECT create_reference_table('verification.service_levels');
SELECT create_reference_table('verification.intake_feed');
SELECT create_reference_table('checkpoint.checkpoints');
SELECT create_reference_table('checkpoint.terminals');
SELECT create_reference_table('checkpoint.risk_areas');
SELECT create_reference_table('checkpoint.watched_plates');
SELECT create_reference_table('pricewatch.commodities');
SELECT create_reference_table('pricewatch.class_thresholds');
SELECT create_reference_table('pricewatch.outlets');
SELECT create_reference_table('pricewatch.price_controls');
SELECT create_reference_table('tracing.checkpoint_feed');
-- Cases of infection are few (their contacts are many): replicated, so every person's tasks can refer to them.
SELECT create_reference_table('tracing.cases');
SELECT create_reference_table('gateway.tokens');

-- Intake: by district, the key of the queues and of repeat detection.
SELECT create_distributed_table('intake.help_requests', 'district');
SELECT create_distributed_table('intake.status_transitions', 'district', colocate_with => 'intake.help_requests');
-- Suggestions may name no district: spread by their request id, which every key holds.
SELECT create_distributed_table('intake.suggestions', 'request_id');

-- Verification: by district, like intake's requests its cases come from.
SELECT create_distributed_table('verification.cases', 'district');
SELECT create_distributed_table('verification.events', 'district', colocate_with => 'verification.cases');
SELECT create_distributed_table('verification.intake_outbox', 'district', colocate_with => 'verification.cases');
SELECT create_distributed_table('verification.escalations', 'district', colocate_with => 'verification.cases');

-- Checkpoint: by checkpoint, so one exit's logs, sequences and statistics live on one node.
SELECT create_distributed_table('checkpoint.vehicle_logs', 'checkpoint');
SELECT create_distributed_table('checkpoint.log_sequences', 'checkpoint', colocate_with => 'checkpoint.vehicle_logs');

-- Price watch: by district, where series, rules and baselines are computed.
SELECT create_distributed_table('pricewatch.observations', 'district');
SELECT create_distributed_table('pricewatch.daily_prices', 'district', colocate_with => 'pricewatch.observations');
SELECT create_distributed_table('pricewatch.baselines', 'district', colocate_with => 'pricewatch.observations');
SELECT create_distributed_table('pricewatch.alerts', 'district', colocate_with => 'pricewatch.observations');
SELECT create_distributed_table('pricewatch.alert_events', 'district', colocate_with => 'pricewatch.observations');
-- The idempotency keys are found by who sent them, not where: their own distribution.
SELECT create_distributed_table('pricewatch.observation_keys', 'submitter');

-- Tracing: by person, so a person's tasks, calls and reads of their data live together.
SELECT create_distributed_table('tracing.persons', 'id');
-- One person per ID number: found by the number's blind index, so spread by it.
SELECT create_distributed_table('tracing.person_ids', 'id_index');
SELECT create_distributed_table('tracing.tasks', 'person_id', colocate_with => 'tracing.persons');
SELECT create_distributed_table('tracing.attempts', 'person_id', colocate_with => 'tracing.persons');
SELECT create_distributed_table('tracing.access_log', 'person_id', colocate_with => 'tracing.persons');
SELECT create_distributed_table('tracing.overdue', 'person_id', colocate_with => 'tracing.persons');
