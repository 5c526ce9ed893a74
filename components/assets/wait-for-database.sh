# Init container of the backend: wait, bounded, until the database accepts connections.
# Env: DB_HOST, DB_PORT, DB_USER, DB_NAME, TIMEOUT_SECONDS.
# The user is named: this runs as a uid with no passwd entry, outside the image's entrypoint,
# so libpq cannot work out a default user and pg_isready would exit 3 without connecting.
set -eu
deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
until pg_isready --host="$DB_HOST" --port="$DB_PORT" --username="$DB_USER" --dbname="$DB_NAME" --timeout=2 >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "wait-for-database: $DB_HOST:$DB_PORT is not accepting connections after ${TIMEOUT_SECONDS}s; giving up" >&2
    exit 1
  fi
  echo "wait-for-database: waiting for $DB_HOST:$DB_PORT to accept connections"
  sleep 2
done
echo "wait-for-database: $DB_HOST:$DB_PORT accepts connections"
