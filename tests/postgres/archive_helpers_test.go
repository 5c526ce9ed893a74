package postgres

// Helpers of the durability tests: the archiver's deployed archive.sh (pg_receivewal and base
// backups) against a real primary, order load through a real PgBouncer as PostgREST places
// orders, and recovery of a fresh data directory with the deployed recovery-bootstrap.sh.

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// pgArchiver is pgtest's archiver against one primary of these tests.
type pgArchiver struct {
	*pgtest.Archiver
	primary *pgtest.Server
}

func newArchiver(t *testing.T, primary *pgtest.Server) *pgArchiver {
	t.Helper()
	return &pgArchiver{Archiver: pgtest.NewArchiver(t, primary.Path, primary.Port, pgReplicationPassword), primary: primary}
}

// Receive starts pg_receivewal and waits until the primary sees it streaming.
func (a *pgArchiver) Receive(t *testing.T) {
	t.Helper()
	a.Archiver.Receive(t, a.primary.Connect(t, "postgres"))
}

// WaitCaughtUp waits until the archiver has flushed everything the primary has written.
func (a *pgArchiver) WaitCaughtUp(t *testing.T) {
	t.Helper()
	a.Archiver.WaitCaughtUp(t, a.primary.Connect(t, "postgres"))
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
// acknowledged before it committed before it, every later one commits after it. When an order
// still runs at the second (a loaded machine: a CI run saw one commit before the second and
// be acknowledged after it), the next second is tried.
func (l *orderLoad) Mark() time.Time {
	for {
		next := time.Now().Truncate(time.Second).Add(time.Second)
		time.Sleep(time.Until(next) - 30*time.Millisecond)
		l.gate.Lock()
		if time.Now().Before(next) {
			time.Sleep(time.Until(next) + 30*time.Millisecond)
			l.gate.Unlock()
			return next
		}
		l.gate.Unlock()
	}
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
	pgtest.WaitPromoted(t, conn, proc, 60*time.Second)
	return recovered{Log: out, conn: conn}
}

// runRecoveryBootstrap runs recovery-bootstrap.sh with the primary's programs.
func runRecoveryBootstrap(t *testing.T, primary *pgtest.Server, data, restoreDir, target string) (string, error) {
	t.Helper()
	return pgtest.RunRecoveryBootstrap(t, primary.Path, data, restoreDir, target)
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
