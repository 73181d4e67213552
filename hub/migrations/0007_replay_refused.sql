-- A replay whose switch would lose permits or records is refused (hub/ops/replay.py): it
-- gets a status of its own instead of passing for an interrupted one. Postgres named the
-- unnamed CHECK of 0004 `hub_replays_status_check`, in new and adopted databases alike.
ALTER TABLE hub_replays DROP CONSTRAINT hub_replays_status_check;
ALTER TABLE hub_replays ADD CONSTRAINT hub_replays_status_check CHECK (status IN
    ('running', 'interrupted', 'built', 'switched', 'failed', 'abandoned', 'refused'));
