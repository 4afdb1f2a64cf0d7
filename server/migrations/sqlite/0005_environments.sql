-- ViCE execution environments. The credentials' password is stored only
-- encrypted (ChaCha20-Poly1305 under a key derived from the server key).

CREATE TABLE environments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title          TEXT    NOT NULL DEFAULT '',
    mgmt_type      TEXT    NOT NULL,
    mgmt_software  TEXT    NOT NULL DEFAULT '',
    mgmt_version   TEXT    NOT NULL DEFAULT '',
    rt_type        TEXT    NOT NULL,
    rt_software    TEXT    NOT NULL DEFAULT '',
    rt_version     TEXT    NOT NULL DEFAULT '',
    location       TEXT    NOT NULL DEFAULT '',
    cred_username  TEXT    NOT NULL DEFAULT '',
    cred_password  TEXT,
    cred_specifics TEXT    NOT NULL DEFAULT '{}',
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);
CREATE INDEX environments_user ON environments (user_id, mgmt_type, rt_type);
