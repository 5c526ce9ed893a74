package postgres

// Helpers of the durability tests: the archiver's deployed archive.sh (pg_receivewal and base
// backups) against a real primary, order load through a real PgBouncer as PostgREST places
// orders, and recovery of a fresh data directory with the deployed recovery-bootstrap.sh.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// pgArchiver runs archive.sh as the archiver pod does, against one primary.
type pgArchiver struct {
	Dir     string // the archive (the archiver's claim)
	script  string
	primary *pgtest.Server
	proc    *pgtest.Process
}

func newArchiver(t *testing.T, primary *pgtest.Server) *pgArchiver {
	t.Helper()
	home := pgtest.ServerDir(t)
	a := &pgArchiver{Dir: filepath.Join(home, "archive"), script: filepath.Join(home, "archive.sh"), primary: primary}
	pgtest.WriteFile(t, a.script, assets.File("archive.sh"), 0o644)
	pgtest.WriteFile(t, filepath.Join(home, "archive-metrics.sh"), assets.File("archive-metrics.sh"), 0o644) // beside it, as deployed
	pgtest.WriteFile(t, filepath.Join(home, "replication-password"), pgReplicationPassword+"\n", 0o600)
	cmd := exec.Command("mkdir", "-p", a.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgtest.RunAs(t)}
	require.NoError(t, cmd.Run())
	return a
}

// env is the archiver containers' environment (see archive.sh's header), with the engines'
// folder on PATH.
func (a *pgArchiver) env(t *testing.T, extra ...string) []string {
	return append([]string{
		"PATH=" + filepath.Dir(testkit.RequireEngine(t, "pg_verifybackup")) + ":" + a.primary.Path,
		"PRIMARY_HOST=127.0.0.1", fmt.Sprintf("PRIMARY_PORT=%d", a.primary.Port), "REPLICATION_USER=replicator",
		"PGPASSWORD_FILE=" + filepath.Join(filepath.Dir(a.script), "replication-password"),
		"ARCHIVE_DIR=" + a.Dir, "SLOT=" + components.ArchiverSlot, "BASEBACKUP_KEEP=2",
	}, extra...)
}

// Receive starts `archive.sh receive` (pg_receivewal) and waits until the primary sees it
// streaming.
func (a *pgArchiver) Receive(t *testing.T) {
	t.Helper()
	a.proc = pgtest.StartProcessEnv(t, "archiver", filepath.Join(filepath.Dir(a.script), "archiver.log"), syscall.SIGTERM,
		a.env(t), "sh", a.script, "receive")
	admin := a.primary.Connect(t, "postgres")
	for deadline := time.Now().Add(20 * time.Second); ; {
		var n int
		require.NoError(t, admin.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", components.ArchiverSlot).Scan(&n))
		if n == 1 {
			return
		}
		require.False(t, time.Now().After(deadline), "the archiver is not streaming after 20 s:\n%s", a.proc.Log())
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitCaughtUp waits until the archiver has flushed everything the primary has written.
func (a *pgArchiver) WaitCaughtUp(t *testing.T) {
	t.Helper()
	admin := a.primary.Connect(t, "postgres")
	for deadline := time.Now().Add(20 * time.Second); ; {
		var behind int64
		require.NoError(t, admin.QueryRow(context.Background(),
			"SELECT pg_current_wal_lsn() - flush_lsn FROM pg_stat_replication WHERE application_name = $1", components.ArchiverSlot).Scan(&behind))
		if behind <= 0 {
			return
		}
		require.False(t, time.Now().After(deadline), "the archiver is %d bytes behind after 20 s", behind)
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops pg_receivewal as the kubelet does (SIGTERM) and waits.
func (a *pgArchiver) Stop(t *testing.T) {
	t.Helper()
	_ = a.proc.Cmd.Process.Signal(syscall.SIGTERM)
	<-a.proc.Done
}

// Run runs one archive.sh command to its end and returns what it printed.
func (a *pgArchiver) Run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{a.script}, args...)...)
	cmd.Env = a.env(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgtest.RunAs(t)}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustRunScript runs another deployed script beside archive.sh (e.g. archive-metrics.sh)
// with the archiver's environment plus extra.
func (a *pgArchiver) MustRunScript(t *testing.T, script string, extra ...string) string {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(filepath.Dir(a.script), script))
	cmd.Env = a.env(t, extra...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s:\n%s", script, out)
	return string(out)
}

// MustRun is Run that requires success.
func (a *pgArchiver) MustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := a.Run(t, args...)
	require.NoError(t, err, "archive.sh %s:\n%s", strings.Join(args, " "), out)
	return out
}

// Backups lists the archive's base backups by name (verified ones and .failed ones).
func (a *pgArchiver) Backups(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(a.Dir, "base"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// orderLoad places orders through PgBouncer as PostgREST does (web_user with the JWT claims,
// committed), from several clients, and remembers each acknowledged order and when.
type orderLoad struct {
	mu    sync.Mutex
	acked map[int64]time.Time
	gate  sync.RWMutex // held for writing while the test notes a moment no order straddles
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startOrders starts clients placing one-unit orders through connString until stopped;
// errors after the primary is gone end a client.
func startOrders(t *testing.T, connString string, clients int, user int64, products []int64) *orderLoad {
	t.Helper()
	l := &orderLoad{acked: map[int64]time.Time{}, stop: make(chan struct{})}
	ctx := context.Background()
	for c := range clients {
		conn, err := pgx.Connect(ctx, connString)
		require.NoError(t, err)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer conn.Close(ctx)
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.gate.RLock()
				var id int64
				err := pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(user), true, func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, "SELECT (api.place_order($1::text::jsonb)->>'id')::bigint",
						pgtest.Items([2]int64{products[(c+i)%len(products)], 1})).Scan(&id)
				})
				if err == nil {
					l.mu.Lock()
					l.acked[id] = time.Now()
					l.mu.Unlock()
				}
				l.gate.RUnlock()
				if err != nil {
					return
				}
			}
		}()
	}
	return l
}

// Mark waits for the next whole second with no order in flight and returns it: every order
// acknowledged before it committed before it, every later one commits after it.
func (l *orderLoad) Mark() time.Time {
	next := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(next) - 30*time.Millisecond)
	l.gate.Lock()
	time.Sleep(time.Until(next) + 30*time.Millisecond)
	l.gate.Unlock()
	return next
}

// Stop ends the clients and returns the acknowledged orders.
func (l *orderLoad) Stop() map[int64]time.Time {
	close(l.stop)
	l.wg.Wait()
	return l.acked
}

// ackedBefore splits the acknowledged ids at a moment.
func ackedBefore(acked map[int64]time.Time, at time.Time) (before, after []int64) {
	for id, when := range acked {
		if when.Before(at) {
			before = append(before, id)
		} else {
			after = append(after, id)
		}
	}
	sort.Slice(before, func(i, j int) bool { return before[i] < before[j] })
	sort.Slice(after, func(i, j int) bool { return after[i] < after[j] })
	return before, after
}

// shopForLoad gives every product ample stock, lifts the cap on a customer's unpaid units
// (the load is one customer's thousands of orders) and returns a customer and the products.
func shopForLoad(t *testing.T, s *pgtest.Server) (int64, []int64) {
	t.Helper()
	admin := s.Connect(t, pgtest.Database)
	_, err := admin.Exec(context.Background(), "UPDATE shop.products SET stock = 1000000")
	require.NoError(t, err)
	_, err = admin.Exec(context.Background(), "UPDATE shop.order_limits SET max_open_units = 1000000")
	require.NoError(t, err)
	var products []int64
	for _, id := range pgtest.ProductIDs(t, admin) {
		products = append(products, id)
	}
	return pgtest.UserIDs(t, admin)["demo@example.com"], products
}

// loadPool is PgBouncer with the deployed pool shape in front of the primary.
func loadPool(t *testing.T, s *pgtest.Server) string {
	t.Helper()
	pool := pgtest.StartPgBouncer(t, s, "pgbouncer", pgtest.AuthenticatorPassword,
		assets.PgBouncerSettings{DefaultPoolSize: 20, MinPoolSize: 0, ReservePoolSize: 5, MaxClientConn: 100, MaxDBConns: 30})
	return pool.ConnString(pgtest.AuthenticatorPassword)
}

// recovered is a server started on a data directory recovery-bootstrap.sh prepared.
type recovered struct {
	Log  string // what recovery-bootstrap.sh printed
	conn *pgx.Conn
}

// recoverInto runs the deployed recovery-bootstrap.sh (restoreDir holding base/ and wal/)
// into a fresh data directory, starts PostgreSQL on it with the primary's rendered config and
// waits until recovery has ended and it was promoted.
func recoverInto(t *testing.T, primary *pgtest.Server, restoreDir, target string) recovered {
	t.Helper()
	dir := pgtest.ServerDir(t)
	data := filepath.Join(dir, "pgdata")
	out, err := runRecoveryBootstrap(t, primary, data, restoreDir, target)
	require.NoError(t, err, "recovery-bootstrap.sh:\n%s", out)
	settings := primary.Settings
	settings.Port, settings.UnixSocketDir = testkit.FreePort(t), pgtest.SocketDir(t)
	settings.SynchronousStandbys = "" // alone now: nobody to wait for
	conf, err := assets.RenderPostgresConf(settings)
	require.NoError(t, err)
	confPath := filepath.Join(dir, "postgresql.conf")
	pgtest.WriteFile(t, confPath, conf, 0o644)
	proc := pgtest.StartProcess(t, "recovered", filepath.Join(dir, "postgres.log"), syscall.SIGINT, testkit.RequireEngine(t, "postgres"),
		"-D", data, "-c", "config_file="+confPath, "-c", "listen_addresses=127.0.0.1")
	connString := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", settings.UnixSocketDir, settings.Port, pgtest.Superuser, pgtest.Database)
	pgtest.WaitConnect(t, proc, connString)
	conn, err := pgx.Connect(context.Background(), connString)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for deadline := time.Now().Add(60 * time.Second); ; {
		var inRecovery bool
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		if !inRecovery {
			break
		}
		require.False(t, time.Now().After(deadline), "still in recovery after 60 s:\n%s", proc.Log())
		time.Sleep(50 * time.Millisecond)
	}
	return recovered{Log: out, conn: conn}
}

// runRecoveryBootstrap runs recovery-bootstrap.sh as the postgres container's uid would.
func runRecoveryBootstrap(t *testing.T, primary *pgtest.Server, data, restoreDir, target string) (string, error) {
	t.Helper()
	script := filepath.Join(filepath.Dir(data), "recovery-bootstrap.sh")
	pgtest.WriteFile(t, script, assets.File("recovery-bootstrap.sh"), 0o644)
	cmd := exec.Command("sh", script)
	cmd.Env = []string{"PATH=" + filepath.Dir(testkit.RequireEngine(t, "pg_verifybackup")) + ":" + primary.Path,
		"PGDATA=" + data, "RESTORE_DIR=" + restoreDir, "RECOVERY_TARGET=" + target}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgtest.RunAs(t)}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// OrderIDs are the ids of every order in the recovered database, ascending.
func (r recovered) OrderIDs(t *testing.T) []int64 {
	t.Helper()
	rows, err := r.conn.Query(context.Background(), "SELECT id FROM shop.orders ORDER BY id")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return ids
}

// missing counts the ids of want that are not in have.
func missing(want, have []int64) []int64 {
	set := map[int64]bool{}
	for _, id := range have {
		set[id] = true
	}
	var gone []int64
	for _, id := range want {
		if !set[id] {
			gone = append(gone, id)
		}
	}
	return gone
}
