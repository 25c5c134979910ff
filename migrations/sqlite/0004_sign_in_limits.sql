-- The sign-in limiter's counts, shared by every process on the database
-- (src/server/auth/limiter.rs). `key` is a SHA-256 of what is counted (an
-- account, a client address, or both), never the typed email itself. Times
-- are Unix microseconds on both databases so the same SQL does arithmetic on
-- them. Rows whose window ended are pruned.
CREATE TABLE sign_in_limits (
    key          TEXT PRIMARY KEY CHECK (length(key) = 64),
    window_ends  INTEGER NOT NULL,
    attempts     INTEGER NOT NULL CHECK (attempts >= 0),
    next_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX sign_in_limits_window_ends ON sign_in_limits (window_ends);
