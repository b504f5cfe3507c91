-- The batching writer plans a batch from the head it remembers, possibly before the batch ahead of
-- it has committed, and sends the whole transaction in one message. This guard, called first in that
-- transaction, takes the append lock (ledger/writer.py says why there is one) and then checks that the
-- log's head is exactly the event the batch was planned after: its position and its hash. Anything
-- else (the batch ahead failed, another process appended) raises serialization_failure before a row
-- is written, and the writer plans that batch again from the truth.
--
-- VOLATILE matters: under READ COMMITTED each statement inside a volatile function takes a new
-- snapshot, so the head is read after the lock is granted and sees every batch committed before.
CREATE FUNCTION events_lock_at_head(expected_position bigint, expected_hash text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head_position bigint;
    head_hash     text;
BEGIN
    PERFORM pg_advisory_xact_lock(5495873993171943760);  -- 0x4C45444745524150, "LEDGERAP"
    SELECT position, hash INTO head_position, head_hash FROM events ORDER BY position DESC LIMIT 1;
    IF coalesce(head_position, 0) <> expected_position
       OR coalesce(head_hash, repeat('0', 64)) <> expected_hash THEN
        -- DETAIL carries the head's position alone: short of the planned one means the batch
        -- ahead (same writer) has not committed yet; beyond it, another process appended.
        RAISE EXCEPTION 'the log head moved: it is position %, the batch was planned after %',
            coalesce(head_position, 0), expected_position
            USING ERRCODE = 'serialization_failure', DETAIL = coalesce(head_position, 0)::text;
    END IF;
END;
$$;
