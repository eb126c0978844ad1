-- Several bot processes (MODBOT_SHARD_COUNT, MODBOT_SHARD_IDS) share one database. Exactly one of them runs the
-- scheduled jobs (retention, the retraining schedule, taking over a retraining job whose process died): the one
-- holding the 'scheduler' lease. The holder renews it well before expires_at; another process takes it once it
-- has expired (its holder died or hung), and a holder that stops cleanly deletes its row.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,                  -- host, pid, shards and a random tag of the holding process
    acquired_at TEXT NOT NULL,
    renewed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Review cards to re-render from the database (the retention pass erased their text) that the process which did
-- it cannot reach: a card lives in a server's channel, and only the process running that server's shard can edit
-- it. Each process rewrites the cards of its own servers, then removes the rows. Ids only.
CREATE TABLE cards_to_refresh (
    flag_id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
