-- Retraining: the registry of adapter versions. A row is created when a version appears (the adapter the
-- bot first started with, or a retraining job) and records where it came from, on what data, how it
-- measured, and what became of it.
--   training  a job is making it (at most one at a time, across the bot and `modbot retrain`)
--   active    serving now (exactly one once the bot has started)
--   previous  was active; `/mod rollback` can make it active again
--   rejected  trained, but the evaluation gate kept it out (kept on disk)
--   failed    the job crashed, was killed, or its bot died (no directory is kept)
--   cancelled the job was stopped with /retrain cancel (no directory is kept)
CREATE TABLE adapter_versions (
    number INTEGER PRIMARY KEY,
    name TEXT NOT NULL,                    -- the adapter's own version string, recorded by every prediction
    model TEXT NOT NULL,                   -- the MODBOT_MODEL it belongs to
    path TEXT,                             -- its directory under MODBOT_ADAPTER_DIR
    source TEXT,                           -- for a registered adapter: the directory it was copied from
    parent INTEGER REFERENCES adapter_versions (number),
    status TEXT NOT NULL CHECK (status IN ('training', 'active', 'previous', 'rejected', 'failed', 'cancelled')),
    origin TEXT NOT NULL CHECK (origin IN ('startup', 'discord', 'schedule', 'shell')),
    started_by INTEGER,                    -- the Discord user who ran /retrain (NULL otherwise)
    last_correction_id INTEGER NOT NULL DEFAULT 0,  -- the newest correction its training data included
    corrections INTEGER NOT NULL DEFAULT 0,          -- corrections exported for its job
    job_dir TEXT,
    pid INTEGER,
    phase TEXT,                            -- the job's last reported phase
    progress TEXT,                         -- the job's last progress line (JSON)
    data TEXT,                             -- JSON: what it was trained on (counts per set)
    figures TEXT,                          -- JSON: candidate and active figures on the gold set and held-out corrections
    reason TEXT,                           -- the verdict, or why it failed
    status_channel_id INTEGER,             -- the Discord message that follows the job
    status_message_id INTEGER,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    activated_at TEXT
);
CREATE UNIQUE INDEX adapter_versions_one_active ON adapter_versions (status) WHERE status = 'active';
CREATE UNIQUE INDEX adapter_versions_one_training ON adapter_versions (status) WHERE status = 'training';
