-- Users, their API tokens, and images with every attribute the dialects
-- filter or sort on as a real column.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    email         TEXT    NOT NULL DEFAULT '',
    full_name     TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    created_at    TEXT    NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE images (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    kind               TEXT    NOT NULL CHECK (kind IN ('vm', 'iso', 'disk', 'definition')),
    name               TEXT    NOT NULL,
    label              TEXT    NOT NULL DEFAULT '',
    folder             TEXT    NOT NULL DEFAULT '',
    data_store         TEXT    NOT NULL DEFAULT '',
    path               TEXT    NOT NULL,
    public             BOOLEAN NOT NULL DEFAULT FALSE,
    owner_id           INTEGER REFERENCES users (id) ON DELETE CASCADE,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    size               INTEGER,
    sha256             TEXT,
    format             TEXT,
    virtual_size       INTEGER,
    version            INTEGER NOT NULL DEFAULT 1,
    os_type            TEXT,
    hypervisor         BOOLEAN NOT NULL DEFAULT FALSE,
    hypervisor_type    TEXT,
    supports_physical  BOOLEAN NOT NULL DEFAULT FALSE,
    supports_virtual   BOOLEAN NOT NULL DEFAULT FALSE,
    template_name      TEXT,
    provisioning_type  TEXT,
    active             BOOLEAN NOT NULL DEFAULT TRUE,
    features           TEXT    NOT NULL DEFAULT '[]',
    extensions         TEXT    NOT NULL DEFAULT '{}',
    title              TEXT,
    vice_image_type    TEXT,
    imported           BOOLEAN NOT NULL DEFAULT FALSE,
    origin_environment TEXT,
    environment_ref    TEXT,
    specifics          TEXT
);
CREATE INDEX images_kind_name ON images (kind, name);
CREATE INDEX images_kind_created ON images (kind, created_at);
CREATE INDEX images_created ON images (created_at);
CREATE INDEX images_name ON images (name);
CREATE INDEX images_owner ON images (owner_id, kind);
CREATE INDEX images_sha256 ON images (sha256);

-- Which images a hypervisor image can virtualize (MWS `virtualizedImages`).
CREATE TABLE image_virtualized (
    hypervisor_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    image_id      INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    PRIMARY KEY (hypervisor_id, image_id)
);
