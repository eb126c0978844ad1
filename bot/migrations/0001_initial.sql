-- modbot's first schema. Times are ISO-8601 UTC strings; Discord ids are integers.

CREATE TABLE guild_settings (
    guild_id INTEGER PRIMARY KEY,
    review_channel_id INTEGER,
    hate_threshold REAL NOT NULL DEFAULT 0.5 CHECK (hate_threshold BETWEEN 0.0 AND 1.0),
    offensive_threshold REAL NOT NULL DEFAULT 0.5 CHECK (offensive_threshold BETWEEN 0.0 AND 1.0),
    hate_action TEXT NOT NULL DEFAULT 'flag' CHECK (hate_action IN ('flag', 'delete', 'timeout', 'none')),
    offensive_action TEXT NOT NULL DEFAULT 'flag' CHECK (offensive_action IN ('flag', 'delete', 'timeout', 'none')),
    hate_timeout_minutes INTEGER NOT NULL DEFAULT 10 CHECK (hate_timeout_minutes >= 1),
    offensive_timeout_minutes INTEGER NOT NULL DEFAULT 10 CHECK (offensive_timeout_minutes >= 1),
    updated_at TEXT NOT NULL
);

-- Channels (including categories and threads) and roles whose messages are not classified.
CREATE TABLE exemptions (
    guild_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('channel', 'role')),
    target_id INTEGER NOT NULL,
    created_by INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, kind, target_id)
);

-- One row per classification (an edited message is classified again and gets another row).
-- The text is kept only for flagged messages; it is erased when the message is deleted or
-- when an unreviewed flag is older than MODBOT_RETENTION_DAYS.
CREATE TABLE predictions (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('hate', 'offensive', 'neutral')),
    p_hate REAL NOT NULL,
    p_offensive REAL NOT NULL,
    p_neutral REAL NOT NULL,
    model TEXT NOT NULL,
    adapter_version TEXT NOT NULL,
    truncated INTEGER NOT NULL DEFAULT 0,
    text TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX predictions_by_message ON predictions (message_id);
CREATE INDEX predictions_by_guild_time ON predictions (guild_id, created_at);

-- A prediction that crossed a guild's threshold, and the review card posted for it.
CREATE TABLE flags (
    id INTEGER PRIMARY KEY,
    prediction_id INTEGER NOT NULL UNIQUE REFERENCES predictions (id) ON DELETE CASCADE,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('hate', 'offensive')),
    action TEXT NOT NULL CHECK (action IN ('flag', 'delete', 'timeout')),
    action_result TEXT,
    card_channel_id INTEGER,
    card_message_id INTEGER,
    message_deleted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX flags_by_guild_time ON flags (guild_id, created_at);
CREATE INDEX flags_by_message ON flags (message_id);

-- Append-only: every moderator decision, from a review card or the "Label message" menu.
-- Kept with its own copy of the text: these are the training data for the next adapter.
CREATE TABLE corrections (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    flag_id INTEGER REFERENCES flags (id) ON DELETE SET NULL,
    prediction_id INTEGER REFERENCES predictions (id) ON DELETE SET NULL,
    text TEXT NOT NULL,
    predicted TEXT CHECK (predicted IN ('hate', 'offensive', 'neutral')),
    probabilities TEXT,
    label TEXT NOT NULL CHECK (label IN ('hate', 'offensive', 'neutral')),
    moderator_id INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX corrections_by_flag ON corrections (flag_id, id);
CREATE INDEX corrections_by_guild_time ON corrections (guild_id, created_at);
