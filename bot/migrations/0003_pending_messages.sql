-- Messages the bot received but had not classified when it stopped (the queue did not drain in time):
-- the next start fetches each one from Discord and classifies it. Only ids are kept, never the text,
-- so a message deleted meanwhile is simply not found.
CREATE TABLE pending_messages (
    message_id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    edited INTEGER NOT NULL DEFAULT 0,  -- an edit of a message classified before: it gets no second card
    created_at TEXT NOT NULL
);
