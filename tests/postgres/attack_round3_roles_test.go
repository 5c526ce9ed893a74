package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// roleConn logs in as role with password over TCP from the local address from (the server
// listens on 127.0.0.1), as a pod reaches the database Service or an exporter its own pod's
// loopback.
func roleConn(t *testing.T, s *pgtest.Server, role, password, from string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s sslmode=disable connect_timeout=5",
		s.Port, pgtest.Database, role, password))
	require.NoError(t, err)
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	cfg.DialFunc = dialer.DialContext
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err == nil {
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
	}
	return conn, err
}

// sqlState is the SQLSTATE of a PostgreSQL error ("" for anything else).
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// runAsRole runs one of the deployed job scripts over TCP as role, with its password in a
// file as the Job mounts it.
func runAsRole(t *testing.T, s *pgtest.Server, script, role string, extra ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(pgtest.RolePasswords[role]+"\n"), 0o600))
	path := filepath.Join(dir, "script.sh")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o600))
	cmd := exec.Command("sh", path)
	cmd.Env = append([]string{"PATH=" + s.Path, "LC_ALL=C", "PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", s.Port),
		"PGUSER=" + role, "PGDATABASE=" + pgtest.Database, "PGPASSWORD_FILE=" + pw}, extra...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// 3. The CronJobs and the exporters logged in as the superuser, and with its password
// `COPY ... TO PROGRAM` ran a command on the server. As deployed now (bootstrap.sql, migration
// 000006, credentials-sync.sh, pg_hba.conf): each logs in as a role of its own with its
// password, and does its job with it: pg_dump of the shop as shop_backup (without the signing
// key, which it cannot read at all), every exporter query as shop_monitor (only from the
// pod's loopback), the release of unpaid orders as shop_release_unpaid. None of them runs a
// program or reads a server file, none reads shop.jwt_keys or shop.users' hashes beyond its
// job, none may make roles.
func TestAttackRound3JobRolesDoTheirJobOnly(t *testing.T) {
	s, admin := pgtest.Seeded(t)
	ctx := context.Background()
	marker := filepath.Join(s.Dir, "program-ran")
	conns := map[string]*pgx.Conn{}
	for _, role := range []string{pgtest.BackupRole, pgtest.ReleaseUnpaidRole, pgtest.MonitorRole} {
		conn, err := roleConn(t, s, role, pgtest.RolePasswords[role], "127.0.0.1")
		require.NoError(t, err, "%s logs in with its password over TCP", role)
		conns[role] = conn
		_, err = roleConn(t, s, role, "not-"+pgtest.RolePasswords[role], "127.0.0.1")
		require.Error(t, err, "%s with a wrong password", role)

		var super, createRole bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").Scan(&super, &createRole))
		assert.False(t, super, role)
		assert.False(t, createRole, role)
		for _, attack := range []string{
			"COPY (SELECT 1) TO PROGRAM 'touch " + marker + "'",
			"COPY shop.products FROM PROGRAM 'id'",
			"SELECT pg_read_file('/etc/passwd')",
			"CREATE ROLE intruder SUPERUSER LOGIN PASSWORD 'intruder-password'",
			"ALTER ROLE current_user SUPERUSER",
			"GRANT pg_execute_server_program TO current_user",
		} {
			_, err := conn.Exec(ctx, attack)
			require.Error(t, err, "%s: %s", role, attack)
			assert.Equal(t, "42501", sqlState(err), "%s: %s: %v", role, attack, err)
		}
		// The signing key: no row (row-level security) or no right at all.
		var keys int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM shop.jwt_keys").Scan(&keys)
		if err == nil {
			assert.Zero(t, keys, "%s reads the signing key", role)
		} else {
			assert.Equal(t, "42501", sqlState(err), "%s: %v", role, err)
		}
		_, err = conn.Exec(ctx, "SET row_security = off")
		require.NoError(t, err)
		err = conn.QueryRow(ctx, "SELECT count(*) FROM shop.jwt_keys").Scan(&keys)
		require.Error(t, err, "%s reads shop.jwt_keys with row_security off", role)
		_, err = conn.Exec(ctx, "RESET row_security")
		require.NoError(t, err)
	}
	_, err := os.Stat(marker)
	assert.True(t, os.IsNotExist(err), "a program ran on the server")

	// shop_release_unpaid: calls the release, and nothing else of the shop.
	release := conns[pgtest.ReleaseUnpaidRole]
	for _, sql := range []string{"SELECT count(*) FROM shop.orders", "SELECT count(*) FROM shop.users",
		"UPDATE shop.products SET stock = 0", "SELECT shop.place_order(1, '[]'::jsonb, NULL)"} {
		_, err := release.Exec(ctx, sql)
		require.Error(t, err, sql)
		assert.Equal(t, "42501", sqlState(err), "%s: %v", sql, err)
	}
	u, p := pgtest.UserIDs(t, admin), pgtest.ProductIDs(t, admin)
	stock := pgtest.Snapshot(t, admin).Stock["Espresso Mug"]
	_, err = admin.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", u["alice@example.com"], pgtest.Items([2]int64{p["Espresso Mug"], 3}))
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "UPDATE shop.orders SET created_at = now() - interval '2 hours' WHERE status = 'placed'")
	require.NoError(t, err)
	out, err := runAsRole(t, s, assets.ReleaseUnpaidScript(), pgtest.ReleaseUnpaidRole, "UNPAID_MAX_AGE_MINUTES=60")
	require.NoError(t, err, "release-unpaid.sh as %s:\n%s", pgtest.ReleaseUnpaidRole, out)
	assert.Contains(t, out, "release-unpaid: released 1 ")
	assert.Equal(t, stock, pgtest.Snapshot(t, admin).Stock["Espresso Mug"], "the released units are back in stock")

	// shop_backup: backup.sh's pg_dump of the shop, without the signing key; a dump that asks
	// for the key's data fails.
	backups := filepath.Join(s.Dir, "role-backups")
	require.NoError(t, os.Mkdir(backups, 0o755))
	out, err = runAsRole(t, s, assets.BackupScript(), pgtest.BackupRole, "BACKUP_DIR="+backups, "BACKUP_KEEP=1")
	require.NoError(t, err, "backup.sh as %s:\n%s", pgtest.BackupRole, out)
	dumps, err := filepath.Glob(filepath.Join(backups, "*.dump"))
	require.NoError(t, err)
	require.Len(t, dumps, 1)
	sql, err := exec.Command(testkit.RequireEngine(t, "pg_restore"), "--file=-", dumps[0]).CombinedOutput()
	require.NoError(t, err, "%s", sql)
	assert.Contains(t, string(sql), "COPY shop.orders ", "the dump holds the shop's data")
	assert.Contains(t, string(sql), "COPY shop.products ")
	assert.NotContains(t, string(sql), "COPY shop.jwt_keys ")
	assert.NotContains(t, string(sql), pgtest.JWTSecret)
	dump := exec.Command(testkit.RequireEngine(t, "pg_dump"), "--table=shop.jwt_keys", "--no-password")
	dump.Env = []string{"PATH=" + s.Path, "PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", s.Port), "PGUSER=" + pgtest.BackupRole,
		"PGDATABASE=" + pgtest.Database, "PGPASSWORD=" + pgtest.BackupPassword}
	keyDump, err := dump.CombinedOutput()
	require.Error(t, err, "pg_dump of shop.jwt_keys' data as %s:\n%s", pgtest.BackupRole, keyDump)
	assert.Contains(t, string(keyDump), "row-level security")
	assert.NotContains(t, string(keyDump), pgtest.JWTSecret)

	// shop_monitor: every query of exporter-queries.yaml, and the statistics pg_monitor gives;
	// from any address but the pod's loopback it is refused (shop_backup from the same address
	// logs in: the address is what is refused).
	monitor := conns[pgtest.MonitorRole]
	var queries map[string]struct {
		Query string `yaml:"query"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(assets.File("exporter-queries.yaml")), &queries))
	require.NotEmpty(t, queries)
	for name, q := range queries {
		rows, err := monitor.Query(ctx, q.Query)
		require.NoError(t, err, name)
		rows.Close()
		require.NoError(t, rows.Err(), name)
	}
	var version string
	require.NoError(t, monitor.QueryRow(ctx, "SELECT version::text FROM migrations.schema_migrations").Scan(&version))
	assert.Equal(t, fmt.Sprint(pgtest.NewestVersion(t)), version)
	var sizes, sessions int
	require.NoError(t, monitor.QueryRow(ctx, "SELECT count(pg_database_size(datname)) FROM pg_database WHERE datallowconn").Scan(&sizes))
	assert.GreaterOrEqual(t, sizes, 2, "pg_monitor reads every database's size")
	require.NoError(t, monitor.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query <> '<insufficient privilege>'", pgtest.Superuser).Scan(&sessions))
	assert.Positive(t, sessions, "pg_monitor sees other roles' sessions")
	_, err = roleConn(t, s, pgtest.MonitorRole, pgtest.MonitorPassword, "127.0.0.2")
	require.Error(t, err, "shop_monitor from an address other than the pod's loopback")
	assert.Contains(t, err.Error(), "pg_hba.conf rejects connection")
	_, err = roleConn(t, s, pgtest.BackupRole, pgtest.BackupPassword, "127.0.0.2")
	require.NoError(t, err, "shop_backup from 127.0.0.2 (the address alone refuses the monitor)")
}
