-- bootstrap.sql: what only a superuser may do for the shop's database: the pgcrypto extension,
-- the roles and their settings, the rights of api_owner outside its own schemas, and, for a
-- shop created before migrations existed, the version it is at. Everything else (tables,
-- functions, views, their grants) is a migration under migrations/, applied by golang-migrate
-- as the migrator role. Run by the database-migrate Job's first container (migrate-bootstrap.sh)
-- with psql -v ON_ERROR_STOP=1 as POSTGRES_USER in POSTGRES_DB, before every migration run:
-- every statement is safe to run again. The psql variable migrator_password (from the
-- script's environment, never a command line) is the migrator's password for this run.
--
-- Roles (cluster-wide):
--   api_owner      NOLOGIN: owns schemas shop, api and pool; views and SECURITY DEFINER
--                  functions run with its rights, never a superuser's
--   migrator       LOGIN: golang-migrate logs in as it; its sessions start as api_owner
--   authenticator  LOGIN NOINHERIT: PostgREST connects as it and switches (SET ROLE) to
--   web_anon       NOLOGIN: requests without a JWT
--   web_user       NOLOGIN: requests with a valid JWT
--   shop_backup, shop_release_unpaid, shop_monitor
--                  LOGIN: the backup CronJob's pg_dump, the release-unpaid CronJob and the
--                  postgres_exporters, each instead of the superuser (issue 27, finding 3);
--                  what each may do is granted by migration 000006
-- The passwords of authenticator and the three job roles, and the signing key, are the
-- database-credentials Job's.

-- Keep the password out of the server log, whatever the logging settings.
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';
-- And out of pg_stat_activity, where the members of pg_monitor (pg_read_all_stats) read every
-- session's statement text while it runs, and after it until the next one.
SET track_activities = off;
SELECT current_database() AS shop_db \gset

BEGIN;

-- Every role of the shop, created when missing (the statements below correct their attributes
-- on every run).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
            ('api_owner', 'NOLOGIN NOINHERIT'), ('migrator', 'LOGIN NOINHERIT'),
            ('authenticator', 'LOGIN NOINHERIT'), ('web_anon', 'NOLOGIN'), ('web_user', 'NOLOGIN'),
            ('shop_backup', 'LOGIN'), ('shop_release_unpaid', 'LOGIN'), ('shop_monitor', 'LOGIN')
        ) AS roles (name, attributes)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I %s', r.name, r.attributes);
        END IF;
    END LOOP;
END
$$;

ALTER ROLE api_owner WITH NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE authenticator WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE web_anon WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE web_user WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
GRANT web_anon TO authenticator;
GRANT web_user TO authenticator;

-- The jobs' and exporters' logins: never a superuser, never a role that makes roles (in
-- PostgreSQL 15 CREATEROLE could grant itself pg_execute_server_program), never a member of
-- pg_execute_server_program or pg_*_server_files, so none can run a program or touch a file on
-- the server. A few connections each: a compromised job cannot take the server's slots. Their
-- passwords are set by the credentials Job (until then they cannot log in).
ALTER ROLE shop_backup WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5;
ALTER ROLE shop_release_unpaid WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5;
-- pg_monitor: the statistics and settings postgres_exporter reads (INHERIT: its rights apply).
ALTER ROLE shop_monitor WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5;
GRANT pg_monitor TO shop_monitor;

-- The migrator: a login that can do exactly what api_owner can (its sessions start as
-- api_owner, so everything a migration creates belongs to api_owner), with a new password on
-- every run that only this run's pod ever holds, valid until the run's deadline
-- (MIGRATOR_VALID_SECONDS: a failed run's password dies with it) and cleared by the run's last
-- step (migrate-verify.sh) once it succeeded: between runs nobody can log in as the migrator. A migration never stalls live orders behind
-- a lock: a lock it cannot take within 5 s fails the migration (one transaction: nothing is
-- applied) and the Job, visibly; the same bound keeps a second run from waiting for the
-- first's advisory lock.
\getenv migrator_password MIGRATOR_PASSWORD
\getenv migrator_valid_seconds MIGRATOR_VALID_SECONDS
SELECT (now() + make_interval(secs => :'migrator_valid_seconds'::double precision))::text AS migrator_valid_until \gset
ALTER ROLE migrator WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'migrator_password' VALID UNTIL :'migrator_valid_until';
\unset migrator_password
GRANT api_owner TO migrator;
ALTER ROLE migrator SET role = 'api_owner';
ALTER ROLE migrator SET lock_timeout = '5s';
ALTER ROLE migrator SET statement_timeout = '10min';
ALTER ROLE migrator SET idle_in_transaction_session_timeout = '1min';

-- A request's statements end after this long (PostgREST's connections all log in as
-- authenticator): Envoy's route timeout ends the HTTP request, this ends the database work.
ALTER ROLE authenticator SET statement_timeout = '10s';
-- What one request may cost, per role PostgREST switches to (PostgREST 12 applies these
-- role settings on every request): a stranger's statement ends after 2 s, a customer's
-- after 5 s.
ALTER ROLE web_anon SET statement_timeout = '2s';
ALTER ROLE web_user SET statement_timeout = '5s';
-- Temporary files are bounded for the API's login role in the shop's database (a
-- superuser-only setting: a session cannot lift it), and PUBLIC may not connect to the
-- maintenance database.
ALTER ROLE authenticator IN DATABASE :"shop_db" SET temp_file_limit = '64MB';
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
-- Temporary tables are not temporary files: temp_file_limit does not count them (a backend's
-- session wrote 112 MB of one under the 64 MB limit, issue 27 finding 7). Nothing of the shop
-- creates one (PostgREST's requests, PgBouncer's warm-up, the migrations, the Jobs), so nobody
-- but a superuser may create one in the shop's database: PUBLIC's default TEMPORARY right goes.
REVOKE TEMPORARY ON DATABASE :"shop_db" FROM PUBLIC;
-- PgBouncer's query_timeout (pgbouncer.ini) closes the server connection of a statement that
-- outlived it; the server notices a closed connection only when it next reads or writes, so a
-- running statement would go on. This makes it look every second, and end the statement.
ALTER ROLE authenticator IN DATABASE :"shop_db" SET client_connection_check_interval = '1s';

-- crypt()/gen_salt() hash passwords; hmac() signs the JWTs that api.login issues. api_owner
-- gets exactly the functions its views and SECURITY DEFINER functions call, and may create
-- its schemas in this database (nothing else of it).
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
-- Nobody else may call them: PUBLIC's EXECUTE right of the extension's functions is revoked
-- explicitly, so a database restored from a dump (which creates the extension again, under the
-- default privileges below) has exactly the rights of a fresh one.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO api_owner;
GRANT EXECUTE ON FUNCTION public.crypt(text, text), public.gen_salt(text, integer),
    public.hmac(bytea, bytea, text) TO api_owner;
GRANT CREATE ON DATABASE :"shop_db" TO api_owner;
-- Functions a superuser creates start without PUBLIC's EXECUTE right.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- golang-migrate's version table (x-migrations-table of the Job's command) lives in a schema
-- of its own, owned by api_owner: one row, the version and whether it is dirty.
CREATE SCHEMA IF NOT EXISTS migrations AUTHORIZATION api_owner;
REVOKE ALL ON SCHEMA migrations FROM PUBLIC;

-- A shop created by the init scripts of a release before migrations (schema shop, no version
-- table) is at the version those scripts built, recognised by what they created:
--   1  2026-11-27 (3d681b1): shop.jwt_keys, no shop.order_limits
--   2  2026-12-04 (d35793b) and later init scripts: shop.order_limits and schema pool
-- (000003 is written to apply to every shop between 2 and 3). Anything else is refused.
DO $$
DECLARE
    v_version bigint;
BEGIN
    IF to_regnamespace('shop') IS NULL OR to_regclass('migrations.schema_migrations') IS NOT NULL THEN
        RETURN;
    END IF;
    IF to_regclass('shop.order_limits') IS NOT NULL AND to_regnamespace('pool') IS NOT NULL THEN
        v_version := 2;
    ELSIF to_regclass('shop.jwt_keys') IS NOT NULL AND to_regclass('shop.order_limits') IS NULL THEN
        v_version := 1;
    ELSE
        RAISE EXCEPTION 'bootstrap: schema shop exists without a migration version table and matches no release that created shops before migrations (2026-11-27 or 2026-12-04 and later)'
            USING HINT = 'restore a backup of a known release, or record its version by hand (docs/upgrades.md)';
    END IF;
    CREATE TABLE migrations.schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
    ALTER TABLE migrations.schema_migrations OWNER TO api_owner;
    INSERT INTO migrations.schema_migrations (version, dirty) VALUES (v_version, false);
    RAISE NOTICE 'bootstrap: a shop created before migrations, recognised as version %', v_version;
END
$$;

COMMIT;
