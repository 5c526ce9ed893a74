#!/bin/bash
# A stand-in for the postgres:15 image's docker-entrypoint.sh, which is not on this machine:
# the container contract suite runs the database container's recorded args through it, with
# the container's env, mounts and uid. It follows the image's first-start path step by step:
# - PGDATA created with mode 700; initdb as POSTGRES_USER with the password from
#   POSTGRES_PASSWORD_FILE, under nss_wrapper because the uid has no passwd entry (the image
#   does exactly this, and only around initdb);
# - "host all all all scram-sha-256" appended to pg_hba.conf;
# - a temporary server on the Unix socket only, with the container's args; POSTGRES_DB
#   created; /docker-entrypoint-initdb.d/* run in name order (*.sql with psql, *.sh sourced
#   when not executable, run otherwise); the temporary server stopped;
# - then `exec postgres "$@"`, without nss_wrapper.
# An existing PGDATA skips straight to the last step, as in the image.
set -Eeo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	shift
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	POSTGRES_PASSWORD="$(< "$POSTGRES_PASSWORD_FILE")"
	export POSTGRES_PASSWORD
	for wrapper in {/usr,}/lib{/*,}/libnss_wrapper.so; do
		if [ -s "$wrapper" ]; then
			NSS_WRAPPER_PASSWD="$(mktemp)"
			NSS_WRAPPER_GROUP="$(mktemp)"
			printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$(id -u)" "$(id -g)" "$PGDATA" > "$NSS_WRAPPER_PASSWD"
			printf 'postgres:x:%s:\n' "$(id -g)" > "$NSS_WRAPPER_GROUP"
			export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
			break
		fi
	done
	if ! getent passwd "$(id -u)" >/dev/null; then
		echo "postgres-entrypoint: uid $(id -u) has no passwd entry and nss_wrapper did not give it one (LD_PRELOAD=${LD_PRELOAD:-unset}): install Debian package libnss-wrapper (make deps)" >&2
		exit 1
	fi
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") --no-sync >/dev/null
	if [[ "${LD_PRELOAD:-}" == */libnss_wrapper.so ]]; then
		rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
		unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
	fi
	printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"

	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@") -c listen_addresses=''" -w start
	export PGPASSWORD="$POSTGRES_PASSWORD"
	psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	"${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;' >/dev/null
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
			*.sql) "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" >/dev/null ;;
		esac
	done
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSWORD POSTGRES_PASSWORD
	set -- postgres "$@"
fi
exec "$@"
