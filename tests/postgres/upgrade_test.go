package postgres

// Upgrades: a shop created by the init scripts of a release before migrations existed (frozen
// in testdata/releases), with orders in it, brought to today's schema by the deployed
// database-migrate Job's command; a fresh install; a failed migration.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// pgCatalog is the database's schema as sorted lines (testdata/catalog.sql): tables, columns,
// constraints, indexes, function bodies, views, grants, roles and their settings.
func pgCatalog(t testing.TB, conn *pgx.Conn) []string {
	t.Helper()
	query, err := os.ReadFile(filepath.Join("testdata", "catalog.sql"))
	require.NoError(t, err)
	rows, err := conn.Query(context.Background(), string(query))
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Greater(t, len(lines), 100, "the catalog query read too little to compare")
	return lines
}

// pgShopColumns are the columns of the shop's tables, per table, as a select list.
func pgShopColumns(t testing.TB, conn *pgx.Conn) map[string]string {
	t.Helper()
	columns := map[string]string{}
	for _, table := range []string{"users", "products", "orders", "order_items", "jwt_keys", "login_failures"} {
		columns["shop."+table] = pgtest.QueryString(t, conn, `SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
			FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = $1`, table)
	}
	return columns
}

// pgShopRows is every row of the shop's tables as text, per table, in the given columns (those
// a release had: what an upgrade must keep; columns a migration adds are new).
func pgShopRows(t testing.TB, conn *pgx.Conn, columns map[string]string) map[string]string {
	t.Helper()
	rows := map[string]string{}
	for table, list := range columns {
		rows[table] = pgtest.QueryString(t, conn, "SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') FROM (SELECT "+list+" FROM "+table+") r")
		require.NotEmpty(t, rows[table], "%s is empty: nothing to prove", table)
	}
	return rows
}

// runReleaseInitScripts creates the shop as a frozen release's postgres image did on first
// start: its /docker-entrypoint-initdb.d files in name order, *.sql through psql as
// POSTGRES_USER, *.sh sourced by bash; then its credentials Job's work (the signing key).
func runReleaseInitScripts(t *testing.T, s *pgtest.Server, release string) {
	t.Helper()
	dir := filepath.Join("testdata", "releases", release)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	pwFile := filepath.Join(t.TempDir(), "authenticator-password")
	require.NoError(t, os.WriteFile(pwFile, []byte(pgtest.AuthenticatorPassword+"\n"), 0o600))
	for _, e := range entries {
		path, _ := filepath.Abs(filepath.Join(dir, e.Name()))
		var cmd *exec.Cmd
		switch filepath.Ext(e.Name()) {
		case ".sql":
			cmd = exec.Command("psql", "-v", "ON_ERROR_STOP=1", "--no-password", "--no-psqlrc", "-f", path)
		case ".sh":
			cmd = exec.Command("bash", "-c", `set -Eeo pipefail; . "$1"`, "bash", path)
		default:
			continue
		}
		cmd.Env = s.ClientEnv(pgtest.Database, "POSTGRES_USER="+pgtest.Superuser, "POSTGRES_DB="+pgtest.Database,
			"AUTHENTICATOR_PASSWORD_FILE="+pwFile)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s/%s:\n%s", release, e.Name(), out)
	}
	s.Exec(t, pgtest.Database, "INSERT INTO shop.jwt_keys (secret) VALUES ($1)", pgtest.JWTSecret)
}

// pgPlaceOldOrders places orders and a failed login through the API every release has:
// api.place_order(jsonb) as web_user, api.login as web_anon.
func pgPlaceOldOrders(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	for _, order := range []struct {
		user  int64
		items string
	}{{1, `[{"product_id": 1, "quantity": 2}]`}, {2, `[{"product_id": 4, "quantity": 3}, {"product_id": 5, "quantity": 1}]`}, {1, `[{"product_id": 2, "quantity": 1}]`}} {
		require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(order.user), true, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT api.place_order($1::jsonb)", order.items)
			return err
		}))
	}
	require.NoError(t, pgtest.AsRole(ctx, conn, "web_anon", `{"role": "web_anon"}`, true, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT api.login('alice@example.com', 'not-her-password')")
		return err
	}))
}

// The recorded database-migrate Job runs golang-migrate with exactly the arguments the engine
// tests run (assets.MigrateArgs over the mounted folder) and the migrator's password file.
func requireDeployedMigrateCommand(t *testing.T) {
	t.Helper()
	run := testkit.MustRun(t, "prod", nil)
	pod := testkit.TypedPod(t, run.Object(t, testkit.Job, "database-migrate")).Spec
	migrate := testkit.TypedContainer(t, pod, "migrate")
	require.Equal(t, assets.MigrateArgs(assets.MigrationsDir), migrate.Args)
	var names []string
	for _, e := range migrate.Env {
		names = append(names, e.Name)
	}
	require.Equal(t, []string{"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSFILE"}, names)
}

func TestUpgradeFromEveryEarlierReleaseEqualsFreshInstall(t *testing.T) {
	requireDeployedMigrateCommand(t)
	fresh := pgtest.Start(t)
	out := fresh.ApplySchema(t, pgtest.Database, true)
	assert.Contains(t, out, "1/u initial")
	want := pgCatalog(t, fresh.Connect(t, pgtest.Database))

	newest := pgtest.NewestVersion(t)
	for _, tc := range []struct {
		release    string
		recognised int // the version bootstrap.sql records: the upgrade applies every later one
	}{
		{"2026-11-27-3d681b1", 1},
		{"2026-12-04-d35793b", 2},
		{"2026-12-05-ebc4054", 2},
	} {
		t.Run(tc.release, func(t *testing.T) {
			s := pgtest.Start(t)
			runReleaseInitScripts(t, s, tc.release)
			conn := s.Connect(t, pgtest.Database)
			pgPlaceOldOrders(t, conn)
			columns := pgShopColumns(t, conn)
			before := pgShopRows(t, conn, columns)
			require.NotEqual(t, want, pgCatalog(t, conn), "the release's own schema already equals today's: nothing to prove")

			out := s.ApplySchema(t, pgtest.Database, true)
			assert.Contains(t, out, fmt.Sprintf("recognised as version %d", tc.recognised))
			for v := 1; v <= newest; v++ {
				m := regexp.MustCompile(fmt.Sprintf(`(^|\s)%d/u `, v))
				assert.Equal(t, v > tc.recognised, m.MatchString(out), "migration %d applied: %s", v, out)
			}
			assert.Equal(t, want, pgCatalog(t, conn), "the upgraded catalog differs from a fresh install's")
			assert.Equal(t, before, pgShopRows(t, conn, columns), "rows changed (the seed ran again, or a migration rewrote data)")

			// A second run changes nothing and applies nothing.
			again := s.ApplySchema(t, pgtest.Database, true)
			assert.NotContains(t, again, "/u ")
			assert.Contains(t, again, pgtest.VerifiedClean(t))
			assert.Equal(t, want, pgCatalog(t, conn))
			assert.Equal(t, before, pgShopRows(t, conn, columns))
		})
	}
}

// A migration that fails halfway (here: a lock it cannot take within lock_timeout while a live
// transaction holds it) applies nothing, leaves the version dirty, and every later run refuses
// with golang-migrate's message naming the version, until an operator decides (docs/upgrades.md).
func TestUpgradeFailedMigrationIsRefusedUntilResolved(t *testing.T) {
	s := pgtest.Start(t)
	runReleaseInitScripts(t, s, "2026-12-04-d35793b")
	conn := s.Connect(t, pgtest.Database)
	before := pgCatalog(t, conn)

	// A live transaction holds shop.orders, as a long order would: 000003's index waits 5 s
	// (the migrator's lock_timeout) and fails instead of stalling every order behind it.
	ctx := context.Background()
	holder := s.Connect(t, pgtest.Database)
	tx, err := holder.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE shop.orders IN ROW EXCLUSIVE MODE")
	require.NoError(t, err)
	out, err := s.RunMigrationJob(t, pgtest.Database, false)
	require.Error(t, err, out)
	assert.Contains(t, out, "lock timeout")
	require.NoError(t, tx.Rollback(ctx))

	assert.Equal(t, "3|true", pgtest.QueryString(t, conn, "SELECT version || '|' || dirty FROM migrations.schema_migrations"))
	// Nothing of 000003 was applied (one transaction): the schema is still the release's, but
	// for what bootstrap.sql adds (the migrator, the version table).
	after := pgCatalog(t, conn)
	assert.Contains(t, strings.Join(after, "\n"), "orders_placed_created_at_idx")
	assert.NotContains(t, strings.Join(after, "\n"), "orders_placed_user_id_idx")
	assert.NotEqual(t, before, after)

	out, err = s.RunMigrationJob(t, pgtest.Database, false)
	require.Error(t, err)
	assert.Contains(t, out, "Dirty database version 3. Fix and force version.")

	// The documented way out: the failed migration left nothing, so force the version before it.
	force := exec.Command(testkit.RequireTool(t, "migrate"), "-path", t.TempDir(), "-database", assets.MigrateDatabaseURL, "force", "2")
	force.Env = s.ClientEnv(pgtest.Database)
	forced, err := force.CombinedOutput()
	require.NoError(t, err, "%s", forced)
	out = s.ApplySchema(t, pgtest.Database, false)
	assert.Contains(t, out, "3/u order_path_speed")
}

// A restore of a dump taken at an older schema (here 2, with its version row) over a database
// at today's brings the old functions back; the next run of the migration Job applies what the
// dump lacks, and the catalog equals a fresh install's again, every restored row kept.
func TestUpgradeRestoreOfAnOlderSchemaIsMigratedForward(t *testing.T) {
	fresh := pgtest.Start(t)
	fresh.ApplySchema(t, pgtest.Database, true)
	want := pgCatalog(t, fresh.Connect(t, pgtest.Database))

	s := pgtest.Start(t)
	s.MigrateTo(t, pgtest.Database, 2)
	conn := s.Connect(t, pgtest.Database)
	s.Exec(t, pgtest.Database, "INSERT INTO shop.users (email, name, password_hash) VALUES ('demo@example.com', 'Demo', 'demo-password'), ('alice@example.com', 'Alice', 'alice-password')")
	s.Exec(t, pgtest.Database, "INSERT INTO shop.products (name, price, stock) SELECT 'product ' || i, 1.50 * i, 100 FROM generate_series(1, 5) i")
	s.Exec(t, pgtest.Database, "INSERT INTO shop.jwt_keys (secret) VALUES ($1)", pgtest.JWTSecret)
	pgPlaceOldOrders(t, conn)
	assert.Equal(t, "2", pgtest.QueryString(t, conn, "SELECT version::text FROM migrations.schema_migrations"))
	dump := filepath.Join(pgtest.ServerDir(t), "schema-2.dump")
	out, err := exec.Command("pg_dump", "--format=custom", "--file="+dump, s.ConnString(pgtest.Database)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	columns := pgShopColumns(t, conn)
	rows := pgShopRows(t, conn, columns)

	s.ApplySchema(t, pgtest.Database, false) // the shop moves on to today's schema
	restore := exec.Command("sh", "-c", assets.RestoreCommand)
	restore.Env = s.ClientEnv(pgtest.Database, "DUMP="+dump)
	out, err = restore.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "2", pgtest.QueryString(t, conn, "SELECT version::text FROM migrations.schema_migrations"), "the restore brought schema 2 back")
	require.NotEqual(t, want, pgCatalog(t, conn))

	migrated := s.ApplySchema(t, pgtest.Database, false)
	assert.Contains(t, migrated, "3/u order_path_speed")
	assert.Equal(t, want, pgCatalog(t, conn))
	assert.Equal(t, rows, pgShopRows(t, conn, columns))
}
