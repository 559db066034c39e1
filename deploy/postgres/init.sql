-- The duecourse ledger database, next to Temporal's databases on the same server.
-- Mounted into /docker-entrypoint-initdb.d by docker-compose.yml, so the postgres image runs it
-- once, as the superuser, on the first start of an empty data volume (never again after that).
-- The worker applies the schema itself (`duecourse worker --migrate` / `duecourse db upgrade`),
-- so this only creates the owning role and the empty database.

CREATE ROLE duecourse WITH LOGIN PASSWORD 'duecourse';
CREATE DATABASE duecourse OWNER duecourse;
-- Only the owner (and superusers) may connect to the ledger.
REVOKE CONNECT, TEMPORARY ON DATABASE duecourse FROM PUBLIC;
