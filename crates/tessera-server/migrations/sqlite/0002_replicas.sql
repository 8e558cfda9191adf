-- Which replica holds an instance's change stream, and which replicas are alive.
ALTER TABLE instances ADD COLUMN stream_replica TEXT;

CREATE TABLE replicas (
    id            TEXT    PRIMARY KEY,
    kid           TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
);
