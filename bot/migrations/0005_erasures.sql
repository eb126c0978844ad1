-- Erasure on request (`modbot forget`, `/mod forget`): a member's messages, or one message, erased everywhere.
-- erased_messages (0004) also takes reason 'forgotten': an erased message that is still in Discord is never
-- stored again, whatever edit arrives; those rows are kept.

-- Review cards that still quote erased text. `modbot forget` runs beside the bot and cannot edit Discord messages:
-- the bot rewrites these cards (at its start, and every few minutes while it runs) and removes the rows. Ids only.
CREATE TABLE cards_to_erase (
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (channel_id, message_id)
);

-- One row per erasure: what was asked, by whom, what was erased where, and which adapter versions had been
-- trained on the text (their weights may still carry it). Counts and version numbers, never text.
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    user_id INTEGER,                       -- the member whose messages were erased, or
    message_id INTEGER,                    -- the one message erased
    requested_by TEXT NOT NULL,            -- 'shell', or the Discord user id of the owner who ran /mod forget
    summary TEXT NOT NULL,                 -- JSON: counts per place, the versions trained on it
    created_at TEXT NOT NULL,
    CHECK ((user_id IS NULL) != (message_id IS NULL))
);
