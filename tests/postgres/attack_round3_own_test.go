package postgres

// The third attack round's own pass (issue 27) over the migration surface, with the deployed
// bootstrap.sql, migrate-bootstrap.sh, golang-migrate and migrate-verify.sh against real
// PostgreSQL 15.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit/pgtest"
)

// migratorConn logs in as the migrator over TCP (SCRAM, as the Job's containers do) with a
// password; the error is the login's.
func migratorConn(t *testing.T, s *pgtest.Server, password string) (*pgx.Conn, error) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), fmt.Sprintf("host=127.0.0.1 port=%d user=migrator password=%s dbname=%s sslmode=disable",
		s.Port, password, pgtest.Database))
	if err == nil {
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
	}
	return conn, err
}

// The migrator's password outlived the Job: bootstrap.sql gave it a password with no end and
// nothing took it away, so whoever read the run's password file (the pod's memory volume, a
// node's tmpfs, a debug container) logged in as the migrator ever after, with every right of
// api_owner: the signing key, every password hash, and the version row (mark the schema dirty
// and every later deploy fails; move the version and migrations are skipped). Now the password
// is valid until the run's deadline only, and a run that succeeded clears it as its last step.
func TestAttackRound3OwnMigratorPasswordDiesWithTheRun(t *testing.T) {
	s := pgtest.Start(t)
	before := time.Now()
	s.ApplySchema(t, pgtest.Database, false)
	owner := s.Connect(t, pgtest.Database)

	password := s.MigratorPassword(t, pgtest.Database)
	require.Len(t, password, 48, "the run's password file")

	if conn, err := migratorConn(t, s, password); err == nil {
		var tag string
		if _, uerr := conn.Exec(context.Background(), "UPDATE migrations.schema_migrations SET dirty = true"); uerr == nil {
			tag = "; it marked the schema dirty"
			s.Exec(t, pgtest.Database, "UPDATE migrations.schema_migrations SET dirty = false")
		}
		t.Errorf("the run's migrator password still logs in after the Job%s", tag)
	} else {
		pgtest.RequireError(t, err, "28P01", "password authentication failed for user \"migrator\"")
	}
	assert.Equal(t, "true", pgtest.QueryString(t, owner, "SELECT (rolpassword IS NULL)::text FROM pg_authid WHERE rolname = 'migrator'"),
		"a successful run leaves the migrator no password")

	// A run that fails after the bootstrap keeps its password only until the Job's deadline
	// (1200 s, MIGRATOR_VALID_SECONDS as the Job sets it; TestMigrateJobBoundsTheMigratorsPassword).
	s.Exec(t, pgtest.Database, "UPDATE migrations.schema_migrations SET dirty = true")
	_, err := s.RunMigrationJob(t, pgtest.Database, false)
	require.Error(t, err, "a dirty schema fails the run")
	var validFor float64
	require.NoError(t, owner.QueryRow(context.Background(),
		"SELECT coalesce(extract(epoch FROM rolvaliduntil - now()), 'Infinity') FROM pg_authid WHERE rolname = 'migrator'").Scan(&validFor))
	assert.LessOrEqual(t, validFor, 1200.0+time.Since(before).Seconds(), "a failed run's password ends with the run's deadline")
	assert.Greater(t, validFor, 1100.0)
	s.Exec(t, pgtest.Database, "UPDATE migrations.schema_migrations SET dirty = false")

	// What the run's roles may touch of the version row: nothing but the migrator's.
	for _, role := range []string{"authenticator", "web_anon", "web_user"} {
		for _, sql := range []string{"SELECT version FROM migrations.schema_migrations", "UPDATE migrations.schema_migrations SET dirty = true"} {
			_, err := owner.Exec(context.Background(), fmt.Sprintf("BEGIN; SET LOCAL ROLE %s; %s; ROLLBACK", role, sql))
			if assert.Error(t, err, "%s: %s", role, sql) {
				assert.Contains(t, err.Error(), "permission denied for schema migrations", role)
			}
			_, _ = owner.Exec(context.Background(), "ROLLBACK")
		}
	}
}

// The passwords and the signing key were statement text in pg_stat_activity: bootstrap.sql's
// ALTER ROLE migrator ... PASSWORD and credentials-sync.sh's ALTER ROLE authenticator PASSWORD
// and INSERT INTO shop.jwt_keys showed there while they ran and after, until the next statement.
// Every member of pg_read_all_stats reads other sessions' statements, and pg_monitor (the role
// issue 27's findings 3 and 4 give the exporters) is one: a compromised exporter caught the
// API's password and the signing key at the next run of the credentials Job. Both scripts now
// run with track_activities off (a superuser's setting).
func TestAttackRound3OwnMonitorReadsNoSecretInFlight(t *testing.T) {
	s := pgtest.Start(t)
	s.Exec(t, "postgres", "CREATE ROLE spy LOGIN IN ROLE pg_monitor")
	spy, err := pgx.Connect(context.Background(), strings.Replace(s.ConnString(pgtest.Database), "user="+pgtest.Superuser, "user=spy", 1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = spy.Close(context.Background()) })

	seen := map[string]bool{}
	polls := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // as fast as one connection can ask, for the whole run
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rows, err := spy.Query(context.Background(), "SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
			if err != nil {
				continue
			}
			for rows.Next() {
				var q string
				if rows.Scan(&q) == nil {
					seen[q] = true
				}
			}
			rows.Close()
			polls++
		}
	}()
	s.ApplySchema(t, pgtest.Database, false)
	migrator := s.MigratorPassword(t, pgtest.Database)
	for range 5 {
		s.SyncCredentials(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret)
	}
	close(stop)
	<-done
	require.Greater(t, polls, 1000, "the spy asked often enough to see statements go by")
	secrets := map[string]string{"the migrator's password": migrator, "the authenticator's password": pgtest.AuthenticatorPassword,
		"the JWT signing key": pgtest.JWTSecret}
	for q := range seen {
		for name, secret := range secrets {
			assert.NotContains(t, q, secret, "pg_monitor read %s in a statement: %.120s", name, q)
		}
	}
}
