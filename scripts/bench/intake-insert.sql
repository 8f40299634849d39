-- pgbench's baseline for intake: the same single-row INSERT a help request costs, one per transaction,
-- durable (fsync and synchronous_commit on). The service commits requests in batches; this does not.
INSERT INTO intake.help_requests (id, ticket, caller, request_id, content_hash, category, district, phone,
    contact_name, address, description, special_groups, urgency, priority, green_channel, description_trigrams,
    description_signature, description_trigram_count)
SELECT gen_random_uuid(),
        'KY' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYMMDD') || lpad(nextval('intake.ticket_seq')::text, 8, '0'),
        'pgbench', gen_random_uuid()::text, md5(random()::text), 'food_supply', '410102', '13800000000',
        '', '', '压测基线：需要生活物资', '{}', 'urgent', 30, false, t, intake.trigram_signature(t), icount(t)
FROM intake.trigrams('压测基线：需要生活物资') AS t;
