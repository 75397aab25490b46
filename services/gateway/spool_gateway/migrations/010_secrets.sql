-- Project secrets: name -> value, sealed with AES-256-GCM by the gateway (secrets_crypto.py)
-- under a key that never reaches the database. Only ciphertext is stored; `key_id` says
-- which key sealed it (also the ciphertext's first bytes), for rotation.

CREATE TABLE project_secrets (
    project_id  text NOT NULL REFERENCES projects (id),
    name        text NOT NULL,
    ciphertext  bytea NOT NULL,
    key_id      text NOT NULL,
    creator     text,
    updated_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name)
);
