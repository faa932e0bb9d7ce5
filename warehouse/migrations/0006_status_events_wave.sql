-- name: rollout wave on status events
--
-- Status events carry the rollout wave (proto StatusEvent.Wave), so the
-- rollout funnel can be split by wave. Existing rows read 0, unknown.

ALTER TABLE status_events ADD COLUMN IF NOT EXISTS wave UInt16 DEFAULT 0;
