package postgres

// Read replicas on real PostgreSQL 15, started the way their pods start them: the deployed
// replica-bootstrap.sh (pg_basebackup through a slot per pod) into an empty data directory,
// then postgres with the rendered postgresql.conf and pg_hba.conf, the replication password
// in its environment; the replicator role set by the deployed credentials-sync.sh.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

const pgReplicationPassword = "replication-test-password"

// pgReplica is one read replica of a test's primary.
type pgReplica struct {
	Name, Dir, Data, SocketDir string
	Port                       int
	primary                    *pgtest.Server
	proc                       *pgtest.Process
}

// newReplica prepares a replica's folders (nothing runs yet).
func newReplica(t *testing.T, primary *pgtest.Server, name string) *pgReplica {
	dir := pgtest.ServerDir(t)
	return &pgReplica{Name: name, Dir: dir, Data: filepath.Join(dir, "pgdata"), SocketDir: pgtest.SocketDir(t), Port: testkit.FreePort(t), primary: primary}
}

// Bootstrap runs the deployed replica-bootstrap.sh as the server user, with the pod's env.
func (r *pgReplica) Bootstrap(t *testing.T) string {
	t.Helper()
	return r.bootstrapAgainst(t, r.primary.Port)
}

// bootstrapAgainst runs it with the primary at another port (one nothing listens on: the
// primary is down).
func (r *pgReplica) bootstrapAgainst(t *testing.T, primaryPort int) string {
	t.Helper()
	script := filepath.Join(r.Dir, "replica-bootstrap.sh")
	pwFile := filepath.Join(r.Dir, "replication-password")
	pgtest.WriteFile(t, script, assets.ReplicaBootstrapScript(), 0o644)
	pgtest.WriteFile(t, pwFile, pgReplicationPassword+"\n", 0o600)
	cmd := exec.Command("sh", script)
	cmd.Dir = r.Dir
	cmd.Env = []string{
		"PATH=" + filepath.Dir(testkit.RequireEngine(t, "pg_basebackup")) + ":" + r.primary.Path,
		"PGDATA=" + r.Data, "PRIMARY_HOST=127.0.0.1", fmt.Sprintf("PRIMARY_PORT=%d", primaryPort),
		"REPLICATION_USER=replicator", "PGPASSWORD_FILE=" + pwFile, "SLOT=" + r.Name, "TIMEOUT_SECONDS=30",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgtest.RunAs(t)}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "replica-bootstrap.sh:\n%s", out)
	return string(out)
}

// Start runs postgres on the bootstrapped data directory with the rendered config.
func (r *pgReplica) Start(t *testing.T) {
	t.Helper()
	settings := r.primary.Settings
	settings.Port, settings.UnixSocketDir = r.Port, r.SocketDir
	conf, err := assets.RenderPostgresConf(settings)
	require.NoError(t, err)
	confPath := filepath.Join(r.Dir, "postgresql.conf")
	pgtest.WriteFile(t, confPath, conf, 0o644)
	r.proc = pgtest.StartProcessEnv(t, r.Name, filepath.Join(r.Dir, "postgres.log"), syscall.SIGINT,
		[]string{"PGPASSWORD=" + pgReplicationPassword}, testkit.RequireEngine(t, "postgres"),
		"-D", r.Data, "-c", "config_file="+confPath, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	pgtest.WaitConnect(t, r.proc, r.connString())
}

// Stop stops it (fast shutdown) and waits.
func (r *pgReplica) Stop(t *testing.T) {
	t.Helper()
	_ = r.proc.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-r.proc.Done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop", r.Name)
	}
}

func (r *pgReplica) connString() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", r.SocketDir, r.Port, pgtest.Superuser, pgtest.Database)
}

func (r *pgReplica) Connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), r.connString())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// waitRow waits until a product name is visible and returns how long that took.
func (r *pgReplica) waitRow(t *testing.T, name string, since time.Time) time.Duration {
	t.Helper()
	conn := r.Connect(t)
	for time.Since(since) < 30*time.Second {
		var n int
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM shop.products WHERE name = $1", name).Scan(&n))
		if n == 1 {
			return time.Since(since)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: %q not replicated within 30 s:\n%s", r.Name, name, r.proc.Log())
	return 0
}

func TestReplicaStreaming(t *testing.T) {
	primary := pgtest.StartLoaded(t, true)
	primary.SyncCredentialsWithReplication(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, pgReplicationPassword)
	admin := primary.Connect(t, pgtest.Database)
	ctx := context.Background()
	// The test server runs with synchronous_commit=off, which holds WAL back from the
	// senders for up to wal_writer_delay; the deployed primary commits synchronously.
	_, err := admin.Exec(ctx, "SET synchronous_commit = on")
	require.NoError(t, err)
	insert := func(name string) time.Time {
		_, err := admin.Exec(ctx, "INSERT INTO shop.products (name, price, stock) VALUES ($1, 1, 1)", name)
		require.NoError(t, err)
		return time.Now()
	}

	replicas := []*pgReplica{newReplica(t, primary, "database-replica-0"), newReplica(t, primary, "database-replica-1")}
	for _, r := range replicas {
		assert.Contains(t, r.Bootstrap(t), "copying the primary")
		r.Start(t)
	}
	// A replica's WAL receiver connects a moment after it accepts connections: wait for both
	// slots to be in use (up to 10 s), then assert exactly them.
	active := func() string {
		return pgtest.QueryString(t, admin, "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots WHERE active")
	}
	for deadline := time.Now().Add(10 * time.Second); active() != "database_replica_0,database_replica_1" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, "database_replica_0,database_replica_1", active())

	t.Run("a row written on the primary is read on both replicas", func(t *testing.T) {
		written := insert("replicated-1")
		for _, r := range replicas {
			lag := r.waitRow(t, "replicated-1", written)
			t.Logf("replica timing: %s saw the row %.1f ms after the commit", r.Name, float64(lag.Microseconds())/1000)
		}
	})

	t.Run("a replica is read-only and passes its deployed readiness probe", func(t *testing.T) {
		_, err := replicas[0].Connect(t).Exec(ctx, "INSERT INTO shop.products (name, price, stock) VALUES ('no', 1, 1)")
		pgtest.RequireError(t, err, "25006", "read-only transaction")
		probe := replicaReadinessProbe(t)
		for i, arg := range probe {
			if strings.HasPrefix(arg, "--host=") {
				probe[i] = "--host=" + replicas[0].SocketDir
			}
			if strings.HasPrefix(arg, "--port=") {
				probe[i] = fmt.Sprintf("--port=%d", replicas[0].Port)
			}
		}
		cmd := exec.Command(testkit.RequireEngine(t, probe[0]), probe[1:]...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "readiness probe on a caught-up replica: %s", out)
		// The primary is not in recovery: the same probe fails there.
		for i, arg := range probe {
			if strings.HasPrefix(arg, "--host=") {
				probe[i] = "--host=" + primary.SocketDir
			}
			if strings.HasPrefix(arg, "--port=") {
				probe[i] = fmt.Sprintf("--port=%d", primary.Port)
			}
		}
		out, err = exec.Command(testkit.RequireEngine(t, probe[0]), probe[1:]...).CombinedOutput()
		assert.Error(t, err, "the primary is not a ready replica: %s", out)
	})

	t.Run("bootstrap again on an existing data directory changes nothing", func(t *testing.T) {
		before, err := os.ReadFile(filepath.Join(replicas[1].Data, "postgresql.auto.conf"))
		require.NoError(t, err)
		assert.Contains(t, replicas[1].Bootstrap(t), "holds a database; resuming from slot")
		after, err := os.ReadFile(filepath.Join(replicas[1].Data, "postgresql.auto.conf"))
		require.NoError(t, err)
		assert.Equal(t, string(before), string(after))
	})

	t.Run("with the primary down, a replica restarts on its data", func(t *testing.T) {
		before, err := os.ReadFile(filepath.Join(replicas[1].Data, "postgresql.auto.conf"))
		require.NoError(t, err)
		out := replicas[1].bootstrapAgainst(t, testkit.FreePort(t))
		assert.Contains(t, out, "holds a database; resuming from slot database_replica_1 (the primary does not answer now)")
		after, err := os.ReadFile(filepath.Join(replicas[1].Data, "postgresql.auto.conf"))
		require.NoError(t, err)
		assert.Equal(t, string(before), string(after))
	})

	t.Run("a stopped replica catches up after a restart", func(t *testing.T) {
		r := replicas[1]
		r.Stop(t)
		insert("while-stopped-1")
		insert("while-stopped-2")
		r.Start(t)
		start := time.Now()
		r.waitRow(t, "while-stopped-2", start)
		t.Logf("replica timing: %s caught up %.1f ms after its restart", r.Name, float64(time.Since(start).Microseconds())/1000)
	})

	t.Run("a replica whose data is gone bootstraps again from its slot", func(t *testing.T) {
		r := replicas[0]
		r.Stop(t)
		require.NoError(t, os.RemoveAll(r.Data))
		insert("after-data-loss")
		assert.Contains(t, r.Bootstrap(t), "the primary still has slot database_replica_0")
		r.Start(t)
		r.waitRow(t, "after-data-loss", time.Now())
	})

	t.Run("a replica whose slot was dropped on the primary copies it again", func(t *testing.T) {
		r := replicas[1]
		r.Stop(t)
		_, err := admin.Exec(ctx, "SELECT pg_drop_replication_slot('database_replica_1')")
		require.NoError(t, err)
		insert("after-slot-drop")
		assert.Contains(t, r.Bootstrap(t), "the primary has no slot database_replica_1 any more; copying the primary again")
		r.Start(t)
		r.waitRow(t, "after-slot-drop", time.Now())
		assert.Equal(t, "reserved", pgtest.QueryString(t, admin,
			"SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'database_replica_1' AND active"))
	})

	t.Run("a replica whose slot was lost copies the primary again", func(t *testing.T) {
		r := replicas[1]
		r.Stop(t)
		// The primary keeps at most max_slot_wal_keep_size of WAL for a stopped replica: with
		// 1MB and a few WAL segments written since, its slot is lost at the next checkpoint.
		for _, sql := range []string{"ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "SELECT pg_reload_conf()"} {
			_, err := admin.Exec(ctx, sql)
			require.NoError(t, err)
		}
		t.Cleanup(func() {
			_, _ = admin.Exec(ctx, "ALTER SYSTEM RESET max_slot_wal_keep_size")
			_, _ = admin.Exec(ctx, "SELECT pg_reload_conf()")
		})
		for i := range 3 {
			insert(fmt.Sprintf("wal-filler-%d", i))
			_, err := admin.Exec(ctx, "SELECT pg_switch_wal()")
			require.NoError(t, err)
		}
		_, err := admin.Exec(ctx, "CHECKPOINT")
		require.NoError(t, err)
		require.Equal(t, "lost", pgtest.QueryString(t, admin,
			"SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'database_replica_1'"))
		insert("after-slot-lost")
		assert.Contains(t, r.Bootstrap(t), "the primary no longer keeps the WAL slot database_replica_1 needs (lost); copying the primary again")
		r.Start(t)
		r.waitRow(t, "after-slot-lost", time.Now())
	})
}

// replicaReadinessProbe is the readiness probe the program registers on the replicas of a
// stack without Patroni (databaseFailover false: the replica StatefulSet).
func replicaReadinessProbe(t *testing.T) []string {
	r := testkit.MustRun(t, "prod", map[string]string{"databaseFailover": "false"})
	pod := testkit.TypedPod(t, r.Object(t, testkit.StatefulSet, "database-replica"))
	for _, c := range pod.Spec.Containers {
		if c.Name == "postgres" {
			require.NotNil(t, c.ReadinessProbe.Exec)
			return append([]string(nil), c.ReadinessProbe.Exec.Command...)
		}
	}
	t.Fatal("no postgres container on the replicas")
	return nil
}
