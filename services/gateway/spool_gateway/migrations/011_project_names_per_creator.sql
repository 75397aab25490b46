-- Project names are unique per creator, not across the platform: a name taken by someone
-- else's project must not tell a user that the project exists (another tenant's objects are
-- invisible, docs/architecture.md "Identity and access").
ALTER TABLE projects DROP CONSTRAINT projects_name_key;
CREATE UNIQUE INDEX projects_creator_name ON projects (creator, name);
