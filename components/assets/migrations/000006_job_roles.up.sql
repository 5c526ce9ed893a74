-- 000006: what the jobs' and exporters' own login roles may do (issue 27, finding 3). Until
-- now the backup and release-unpaid CronJobs and the postgres_exporters logged in as the
-- superuser, whose password let `COPY ... TO PROGRAM` run a command on the server.
-- bootstrap.sql creates the roles (shop_backup, shop_release_unpaid, shop_monitor: no
-- superuser, no role making, no server files or programs), the credentials Job sets their
-- passwords; this grants each exactly what its job needs, and nothing of the signing key.
-- Every statement is safe on a shop that already has any of it.

-- The strongest lock first (docs/upgrades.md): row-level security on shop.jwt_keys takes
-- ACCESS EXCLUSIVE on it. Every sign-in reads the table (api.login), so sign-ins wait for the
-- rest of this transaction (milliseconds); nothing else here locks a table.
LOCK TABLE shop.jwt_keys IN ACCESS EXCLUSIVE MODE;

-- The signing key's row is visible to its owner (api_owner: api.login and the views run with
-- its rights) and superusers (the credentials Job writes it) only: row-level security with no
-- policy shows every other role no row, even one with SELECT on the table. The owner is not
-- subject to it (no FORCE).
ALTER TABLE shop.jwt_keys ENABLE ROW LEVEL SECURITY;

-- shop_backup: pg_dump of the shop. It reads every table and sequence of the schemas that hold
-- data (shop, pool, migrations: the version row comes back with a restore) and locks every
-- table it dumps, shop.jwt_keys included: LOCK TABLE needs SELECT on the table, and
-- backup.sh leaves that table's data out anyway (--exclude-table-data), which row-level
-- security above makes true even for a pg_dump that asks for it (zero rows, or an error with
-- row_security off). Tables and sequences later migrations create (as api_owner) are readable
-- to it too, so the backup never fails on a new table.
GRANT USAGE ON SCHEMA shop, pool, migrations TO shop_backup;
GRANT SELECT ON ALL TABLES IN SCHEMA shop, pool, migrations TO shop_backup;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA shop, pool, migrations TO shop_backup;
ALTER DEFAULT PRIVILEGES FOR ROLE api_owner IN SCHEMA shop, pool, migrations GRANT SELECT ON TABLES TO shop_backup;
ALTER DEFAULT PRIVILEGES FOR ROLE api_owner IN SCHEMA shop, pool, migrations GRANT SELECT ON SEQUENCES TO shop_backup;

-- shop_release_unpaid: the release of unpaid orders, and nothing else. The function runs with
-- its owner's rights (its search_path is fixed to pg_catalog, pg_temp, as a SECURITY DEFINER
-- function's must be), so the role needs no right on a table; a later migration that replaces
-- the function must keep SECURITY DEFINER (TestAttackRound3JobRolesDoTheirJobOnly calls it as
-- the role).
ALTER FUNCTION shop.release_unpaid_orders(interval) SECURITY DEFINER;
GRANT USAGE ON SCHEMA shop TO shop_release_unpaid;
GRANT EXECUTE ON FUNCTION shop.release_unpaid_orders(interval) TO shop_release_unpaid;

-- shop_monitor: pg_monitor (bootstrap.sql) and the schema version the exporter reports
-- (exporter-queries.yaml: shop_schema_version, shop_schema_dirty).
GRANT USAGE ON SCHEMA migrations TO shop_monitor;
GRANT SELECT ON migrations.schema_migrations TO shop_monitor;
