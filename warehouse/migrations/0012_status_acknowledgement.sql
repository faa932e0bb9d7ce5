-- name: status events say which are command acknowledgements
--
-- A device answers a command that changes nothing on it (defer, halt) and
-- a command it does not run (outcome rejected or duplicate) by re-reporting
-- the state it is in, with the command's result (proto CommandResult:
-- command_id, action, outcome). Such an event is a true report of the
-- device's state but no change of it: counted as a failure event, a failed
-- device acknowledging a defer or a halt looked like a second failure (issue
-- 18: 259 of 1,263 "failure events" of a 3,000-device run). The column says
-- which events those are, from the result the table already stores, so
-- every query leaves them out the same way (WHERE NOT acknowledgement). An
-- ALIAS stores nothing: rows from before this migration read right too.
-- A retry or rollback that ran ends its walk with a result on the state it
-- reached, a real change, and is no acknowledgement.

ALTER TABLE status_events ADD COLUMN IF NOT EXISTS acknowledgement Bool ALIAS
	command_id != '' AND (action IN ('defer', 'halt') OR outcome IN ('rejected', 'duplicate'));
