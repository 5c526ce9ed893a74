#!/usr/bin/env bash
# 03-roles.sh: the roles PostgREST uses and exactly what each may do.
#
# A shell script (not SQL) only because the password of the login role "authenticator" comes
# from a file: $AUTHENTICATOR_PASSWORD_FILE, a mounted Secret. The password reaches psql
# through its environment (psql's \getenv), never through its command line (which every
# process can read) and is never printed; the session turns statement logging off before
# setting it, so it does not reach the server log either.
#
# The postgres image sources *.sh files of /docker-entrypoint-initdb.d that are not executable
# (a ConfigMap's default mode) and executes the others. Everything runs in a subshell, so
# neither its shell options nor its variables leak into the image's entrypoint when sourced,
# and a failure still fails the entrypoint (it runs with set -e).
#
# Roles (cluster-wide, created only when missing, so running this again is harmless):
#   authenticator  LOGIN NOINHERIT: PostgREST connects as it and switches (SET ROLE) to
#   web_anon       NOLOGIN: requests without a JWT: read products and stats, log in
#   web_user       NOLOGIN: requests with a valid JWT: that plus users, own orders, ordering
# Neither API role has any right on schema shop; they reach it only through the views
# (owned by ecommerce) and the SECURITY DEFINER functions of schema api.
(
    set -euo pipefail

    : "${POSTGRES_USER:?03-roles.sh: POSTGRES_USER is not set}"
    : "${POSTGRES_DB:?03-roles.sh: POSTGRES_DB is not set}"
    : "${AUTHENTICATOR_PASSWORD_FILE:?03-roles.sh: AUTHENTICATOR_PASSWORD_FILE is not set (path of the authenticator password file)}"
    if [ ! -r "$AUTHENTICATOR_PASSWORD_FILE" ]; then
        echo "03-roles.sh: cannot read the authenticator password file $AUTHENTICATOR_PASSWORD_FILE" >&2
        exit 1
    fi
    # $(...) drops trailing newlines, as a Secret file written with "echo" has one.
    AUTHENTICATOR_PASSWORD="$(cat "$AUTHENTICATOR_PASSWORD_FILE")"
    if [ -z "$AUTHENTICATOR_PASSWORD" ]; then
        echo "03-roles.sh: the authenticator password file $AUTHENTICATOR_PASSWORD_FILE is empty" >&2
        exit 1
    fi
    export AUTHENTICATOR_PASSWORD

    echo "03-roles.sh: creating roles and grants in database $POSTGRES_DB"
    psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet \
        --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'EOSQL'
-- Keep the password out of the server log, whatever the logging settings.
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';

BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'web_anon') THEN
        CREATE ROLE web_anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'web_user') THEN
        CREATE ROLE web_user NOLOGIN;
    END IF;
END
$$;

\getenv pw AUTHENTICATOR_PASSWORD
ALTER ROLE authenticator WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
\unset pw
ALTER ROLE web_anon WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE web_user WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
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
SELECT current_database() AS shop_db \gset
ALTER ROLE authenticator IN DATABASE :"shop_db" SET temp_file_limit = '64MB';
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
GRANT web_anon TO authenticator;
GRANT web_user TO authenticator;

-- Nothing for PUBLIC: functions are executable by PUBLIC by default, schemas are not usable.
REVOKE ALL ON SCHEMA shop FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA shop FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA shop FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA shop FROM PUBLIC;
REVOKE ALL ON SCHEMA api FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA api FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA api FROM PUBLIC;
-- Functions the owner creates later start without PUBLIC rights too (only a database-wide
-- default can revoke: per-schema defaults can only add rights).
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE api_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- api_owner, whose rights the views and SECURITY DEFINER functions run with: exactly the
-- pgcrypto functions they call (explicit, so a restored database, whose default privileges
-- may come first, has them too).
GRANT USAGE ON SCHEMA public TO api_owner;
GRANT EXECUTE ON FUNCTION public.crypt(text, text), public.gen_salt(text, integer),
    public.hmac(bytea, bytea, text) TO api_owner;

-- web_anon: the catalogue, the figures, logging in.
GRANT USAGE ON SCHEMA api TO web_anon;
GRANT SELECT ON api.products, api.stats TO web_anon;
GRANT EXECUTE ON FUNCTION api.login(text, text) TO web_anon;

-- web_user: all of web_anon's rights, plus users, own orders and placing orders.
GRANT USAGE ON SCHEMA api TO web_user;
GRANT SELECT ON api.products, api.stats, api.users, api.orders TO web_user;
GRANT EXECUTE ON FUNCTION api.login(text, text), api.place_order(jsonb) TO web_user;

COMMIT;
EOSQL
    echo "03-roles.sh: done"
)
