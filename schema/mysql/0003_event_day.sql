-- linktrack MySQL schema, migration 0003: the day event rows are written to
-- never goes backwards.
--
-- Each event writer decides its rows' day under the `event_writer` row lock
-- as max(its own today, locks.day) and moves locks.day forward. So across
-- replicas, whatever their clocks say around midnight, a larger event id never
-- carries an earlier day than a smaller one, and a reader walking (day, id)
-- from a cursor never passes a row it has not returned.
ALTER TABLE locks ADD COLUMN day SMALLINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'event_writer: the newest day events were written to';
