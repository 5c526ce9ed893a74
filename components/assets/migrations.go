package assets

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MigrationsDir is where the database-migrate Job mounts the migrations (a ConfigMap).
const MigrationsDir = "/migrations"

// MigrateDatabaseURL is golang-migrate's -database argument: lib/pq takes the host, port, user
// and database from PGHOST, PGPORT, PGUSER and PGDATABASE and the password from PGPASSFILE, so
// no secret and no host name is on the command line; the version table is
// migrations.schema_migrations (bootstrap.sql creates its schema). The server offers no TLS
// inside the cluster (sslmode=disable; lib/pq's default would require it).
const MigrateDatabaseURL = `postgres:///?sslmode=disable&x-migrations-table="migrations"."schema_migrations"&x-migrations-table-quoted=1`

// MigrateArgs is the golang-migrate command line (the image's entrypoint is `migrate`) that
// applies every migration of dir not yet applied, in order, under the tool's advisory lock.
func MigrateArgs(dir string) []string {
	return []string{"-path", dir, "-database", MigrateDatabaseURL, "up"}
}

// migrationName is golang-migrate's file name: version, title, direction. Only "up"
// migrations exist: schema changes are expand/contract, never undone by a down file.
var migrationName = regexp.MustCompile(`^([0-9]{6})_[a-z0-9_]+\.up\.sql$`)

// Migrations returns the schema migrations (file name -> SQL) and the newest version, after
// checking that their names are golang-migrate's and their versions run 1, 2, 3... without a
// gap (a gap or a duplicate is a packaging bug every test catches).
func Migrations() (map[string]string, int, error) {
	files, err := Files("migrations")
	if err != nil {
		return nil, 0, err
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range files {
			if !yield(name) {
				return
			}
		}
	})
	for i, name := range names {
		m := migrationName.FindStringSubmatch(name)
		if m == nil {
			return nil, 0, fmt.Errorf("assets/migrations/%s: want NNNNNN_title.up.sql", name)
		}
		if v, _ := strconv.Atoi(m[1]); v != i+1 {
			return nil, 0, fmt.Errorf("assets/migrations: %s should be version %d (versions run 1, 2, 3... without gaps)", name, i+1)
		}
		if strings.Contains(strings.ToUpper(files[name]), "CONCURRENTLY") {
			return nil, 0, fmt.Errorf("assets/migrations/%s: CONCURRENTLY cannot run inside the migration's transaction", name)
		}
	}
	return files, len(names), nil
}

// BootstrapSQL is the superuser's part of every migration run (roles, extension, the version of
// a shop created before migrations), run by psql from migrate-bootstrap.sh.
func BootstrapSQL() string { return File("bootstrap.sql") }

// DevSeedSQL is the dev stack's demo data, loaded only into a shop without users and products.
func DevSeedSQL() string { return File("seed-dev.sql") }
