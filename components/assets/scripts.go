package assets

import (
	"fmt"
	"strings"
)

// DevSeedPrefix starts the name of the only init script that loads demo data (users with
// known passwords). InitScripts leaves it out unless asked, so only the dev stack gets it.
const DevSeedPrefix = "90-seed"

// RestoreCommand restores a dump written by backup.sh (pg_dump --format=custom). Run it with
// sh -c in a pod of the postgres image, with the dump's path in DUMP and the usual libpq
// variables (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE) plus PGDATABASE, the database
// to restore into. It drops and recreates every object of the dump in one transaction, with
// its owner (api_owner, never a superuser): on any error nothing changes. The roles
// (api_owner of 01-schema.sql, those of 03-roles.sh) must exist: they are not in the dump.
// The README gives this exact command and the engine tests run it.
const RestoreCommand = `pg_restore --clean --if-exists --single-transaction --dbname "$PGDATABASE" "$DUMP"`

// InitScripts returns the database's init scripts (file name -> content) for the postgres
// image's /docker-entrypoint-initdb.d, which runs them in file-name order on first start.
// The dev seed (DevSeedPrefix*) is included only when includeSeed is true.
func InitScripts(includeSeed bool) (map[string]string, error) {
	files, err := Files("sql")
	if err != nil {
		return nil, err
	}
	seeds := 0
	for name := range files {
		if strings.HasPrefix(name, DevSeedPrefix) {
			seeds++
			if !includeSeed {
				delete(files, name)
			}
		}
	}
	if seeds != 1 {
		return nil, fmt.Errorf("assets/sql: want exactly one %s* file, found %d", DevSeedPrefix, seeds)
	}
	return files, nil
}

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
