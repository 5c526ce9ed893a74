package assets

// RestoreCommand restores a dump written by backup.sh (pg_dump --format=custom). Run it with
// sh -c in a pod of the postgres image, with the dump's path in DUMP and the usual libpq
// variables (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE) plus PGDATABASE, the database
// to restore into. It drops and recreates every object of the dump in one transaction, with
// its owner (api_owner, never a superuser): on any error nothing changes. The roles
// (bootstrap.sql) must exist: they are not in the dump. The next database-migrate run brings a
// dump of an older schema forward (docs/durability.md gives this exact command and the
// engine tests run it).
const RestoreCommand = `pg_restore --clean --if-exists --single-transaction --dbname "$PGDATABASE" "$DUMP"`

// BackupScript returns backup.sh, the POSIX sh script the backup CronJob runs in the postgres
// image (see the script's header for its environment).
func BackupScript() string { return File("backup.sh") }

// CredentialsSyncScript returns credentials-sync.sh, which the database-credentials Job runs
// in the postgres image to set the authenticator password and the JWT signing key (see the
// script's header for its environment).
func CredentialsSyncScript() string { return File("credentials-sync.sh") }

// PromotionCheckScript returns promotion-check.sh, which the promotion check Job runs against
// a color's preview Service before production traffic moves to it.
func PromotionCheckScript() string { return File("promotion-check.sh") }

// PostgresHBA returns pg_hba.conf of the database and its replicas (postgresql.conf's hba_file).
func PostgresHBA() string { return File("pg_hba.conf") }

// ReplicaBootstrapScript returns replica-bootstrap.sh, the init container of a read replica
// (see the script's header for its environment).
func ReplicaBootstrapScript() string { return File("replica-bootstrap.sh") }

// ReleaseUnpaidScript returns release-unpaid.sh, which the release-unpaid CronJob runs in the
// postgres image: shop.release_unpaid_orders for the stack's unpaidOrderMaxAgeMinutes.
func ReleaseUnpaidScript() string { return File("release-unpaid.sh") }
