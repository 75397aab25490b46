-- Identity: users, project bots, project members with roles, and tokens that name them.

CREATE TABLE users (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A bot belongs to the project that created it; it may be a member of other projects too.
CREATE TABLE bots (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id),
    name        text NOT NULL,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE project_members (
    project_id  text NOT NULL REFERENCES projects (id),
    member_id   text NOT NULL,           -- a user id or a bot id
    member_kind text NOT NULL CHECK (member_kind IN ('user', 'bot')),
    role        text NOT NULL CHECK (role IN ('owner', 'developer', 'viewer')),
    added_by    text,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, member_id)
);
CREATE INDEX project_members_by_member ON project_members (member_id);

-- Tokens gain an id (to list and revoke them without the secret), a name, and bots.
ALTER TABLE tokens ADD COLUMN id text UNIQUE;
ALTER TABLE tokens ADD COLUMN name text;
ALTER TABLE tokens DROP CONSTRAINT tokens_kind_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check
    CHECK (kind IN ('admin', 'user', 'bot', 'agent'));
CREATE INDEX tokens_by_subject ON tokens (subject) WHERE revoked_at IS NULL;
