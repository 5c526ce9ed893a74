package postgres

// The durability figures of the README, measured in one run (make bench-durability; skipped
// by make test for its minutes): orders/s through PgBouncer with asynchronous and with
// quorum commit, the archive's lag under that load, and the time to recover about 1 GB of
// data plus the WAL of a minute of orders, extrapolated to ten minutes.

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/database"
	"ecommerce-platform/tests/testkit/pgtest"
)

const figureClients = 16

// orderRate places orders for d and returns orders per second.
func orderRate(t *testing.T, primary *pgtest.Server, d time.Duration) float64 {
	user, products := shopForLoad(t, primary)
	load := startOrders(t, loadPool(t, primary), figureClients, user, products)
	time.Sleep(d)
	return float64(len(load.Stop())) / d.Seconds()
}

func TestDurabilityFigures(t *testing.T) {
	if os.Getenv("ECOMMERCE_DURABILITY_FIGURES") == "" {
		t.Skip("run by make bench-durability (minutes of load)")
	}
	ctx := context.Background()
	async, archiver := archivedPrimary(t, nil)

	// Archive lag under load, sampled from the primary every 50 ms.
	var lagBytes []int64
	var lagSeconds []float64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		admin := async.Connect(t, "postgres")
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var b int64
			var s float64
			if admin.QueryRow(ctx, `SELECT pg_current_wal_lsn() - flush_lsn, coalesce(extract(epoch FROM flush_lag), 0)
				FROM pg_stat_replication WHERE application_name = $1`, database.ArchiverSlot).Scan(&b, &s) == nil {
				lagBytes, lagSeconds = append(lagBytes, b), append(lagSeconds, s)
			}
		}
	}()
	asyncRate := orderRate(t, async, 10*time.Second)
	close(stop)
	<-done
	sort.Slice(lagBytes, func(i, j int) bool { return lagBytes[i] < lagBytes[j] })
	sort.Float64s(lagSeconds)
	p99 := func(n int) int { return n * 99 / 100 }
	t.Logf("durability figure: asynchronous commit %.0f orders/s (%d clients through PgBouncer, fsync on)", asyncRate, figureClients)
	t.Logf("durability figure: archive lag under that load: p99 %.1f ms / %d bytes, max %.1f ms / %d bytes (%d samples)",
		lagSeconds[p99(len(lagSeconds))]*1000, lagBytes[p99(len(lagBytes))], lagSeconds[len(lagSeconds)-1]*1000, lagBytes[len(lagBytes)-1], len(lagBytes))

	quorum, _ := archivedPrimary(t, func(s *assets.PostgresSettings) { s.SynchronousStandbys = prodSynchronousStandbys(t) })
	replica := newReplica(t, quorum, "database-replica-0")
	replica.Bootstrap(t)
	replica.Start(t)
	quorumRate := orderRate(t, quorum, 10*time.Second)
	t.Logf("durability figure: quorum commit (ANY 1 of a replica and the archiver) %.0f orders/s: %.2f of asynchronous (cost %.0f %%)",
		quorumRate, quorumRate/asyncRate, 100*(1-quorumRate/asyncRate))

	// About 1 GB of data, a verified base backup, then a minute of orders as WAL.
	start := time.Now()
	async.Exec(t, pgtest.Database, "CREATE TABLE shop.filler AS SELECT g AS id, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 1000000) g")
	t.Logf("durability figure: %s of data written in %.0f s", pgtest.QueryString(t, async.Connect(t, pgtest.Database),
		"SELECT pg_size_pretty(pg_database_size(current_database()))"), time.Since(start).Seconds())
	start = time.Now()
	archiver.MustRun(t, "basebackup")
	t.Logf("durability figure: base backup taken and verified in %.0f s", time.Since(start).Seconds())
	admin := async.Connect(t, "postgres")
	var walStart string
	require.NoError(t, admin.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&walStart))
	minuteRate := orderRate(t, async, time.Minute)
	var walBytes int64
	require.NoError(t, admin.QueryRow(ctx, "SELECT pg_current_wal_lsn() - $1::text::pg_lsn", walStart).Scan(&walBytes))
	archiver.WaitCaughtUp(t)
	archiver.Stop(t)
	start = time.Now()
	r := recoverInto(t, async, archiver.Dir, "latest")
	took := time.Since(start)
	require.NotEmpty(t, r.OrderIDs(t))
	perMinute := float64(walBytes) / (1 << 20)
	t.Logf("durability figure: recovery of the 1 GB base backup plus one minute of orders (%.0f orders/s, %.0f MiB of WAL) took %.1f s", minuteRate, perMinute, took.Seconds())
	t.Logf("durability figure: ten minutes of WAL at that rate (%.0f MiB) would add at most %.0f s (9 more minutes, each replayed in less than this whole recovery took)",
		perMinute*10, took.Seconds()*9) // the measured run already replays one minute; 9 more
}
