-- Messages whose text must never be stored again (ids only, never text). A member's deletion erases the stored
-- text, and the id stays here so that what arrives after the deletion does not store it again: a classification
-- that was still running, an edit event delivered late, a message recorded for the next start.
--   deleted    deleted in Discord (by its author or a moderator, not by the bot's own delete action); such
--              stragglers come within seconds, so the row is dropped after a week by the daily retention pass
CREATE TABLE erased_messages (
    message_id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    erased_at TEXT NOT NULL
);
CREATE INDEX erased_messages_by_reason_time ON erased_messages (reason, erased_at);
