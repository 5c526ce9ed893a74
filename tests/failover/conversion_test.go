package failover

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit/pgtest"
)

// Turning databaseFailover on for a running shop (the upgrade to 1.2.0 does it in prod): the
// StatefulSet database keeps its claim, so database-0's Patroni starts on the data directory
// the single primary left, and the others are created after it is ready (OrderedReady).
// Patroni takes that data over as the leader (same system identifier, every order and the
// schema kept), the new members clone it and join the quorum, the archiver's permanent slot
// appears on every member, and customers' orders are acknowledged again.
func TestFailoverTakesOverTheSinglePrimarysData(t *testing.T) {
	single := pgtest.StartDurable(t, pgtest.Durable{})
	single.SyncCredentialsWithReplication(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, replicationPass)
	before := single.Connect(t, pgtest.Database)
	orders := placeOrders(t, before, 5)
	sysid := pgtest.QueryString(t, before, "SELECT system_identifier::text FROM pg_control_system()")
	version := pgtest.QueryString(t, before, "SELECT version || '|' || dirty FROM migrations.schema_migrations")
	require.NoError(t, before.Close(context.Background()))
	// The old pod's end: the kubelet's SIGTERM, a smart shutdown of the only session left.
	require.NoError(t, single.Proc.Cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-single.Proc.Done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the single primary did not stop:\n%s", single.Proc.Log())
	}

	c := newCluster(t)
	first := c.members[0]
	require.NoError(t, os.Rename(single.DataDir, first.DataDir), "database-0's claim keeps its data directory")
	took := time.Now()
	c.start(first)
	leader := c.waitLeader(nil, 90*time.Second)
	require.Equal(t, first.Name, leader.Name, "the member on the old data leads")
	t.Logf("failover figure: Patroni took the single primary's data over as leader %s after %s", leader.Name, time.Since(took).Round(time.Millisecond))
	for _, m := range c.members[1:] {
		c.start(m)
	}
	c.waitQuorum(leader, members-1, 120*time.Second)
	t.Logf("failover figure: both new members cloned and in the quorum %s after database-0's start", time.Since(took).Round(time.Millisecond))

	for _, m := range c.members {
		conn, err := connect(m, pgtest.Database)
		require.NoError(t, err, m.Name)
		assert.Equal(t, sysid, pgtest.QueryString(t, conn, "SELECT system_identifier::text FROM pg_control_system()"), "%s is the old database's copy", m.Name)
		assert.Equal(t, version, pgtest.QueryString(t, conn, "SELECT version || '|' || dirty FROM migrations.schema_migrations"), m.Name)
		_ = conn.Close(context.Background())
		missing, err := missingOrdersEventually(m, orders, 30*time.Second)
		require.NoError(t, err, m.Name)
		assert.Empty(t, missing, "orders of the single primary missing on %s", m.Name)
	}
	waitSlot(t, 30*time.Second, c.members...)

	load, _ := startShop(c, leader)
	steady(t, load)
	o := checkNoLoss(t, load, leader, time.Now())
	t.Logf("failover figure: %d orders acknowledged on the converted cluster, 0 missing", len(o.acknowledged))
}

// placeOrders places n one-unit orders as a customer of the dev seed, as PostgREST does, and
// returns their ids.
func placeOrders(t *testing.T, conn *pgx.Conn, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	demo := pgtest.UserIDs(t, conn)["demo@example.com"]
	filters := pgtest.ProductIDs(t, conn)["Paper Filters"]
	var ids []int64
	for range n {
		var id int64
		require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(demo), true, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT (api.place_order($1::text::jsonb)->>'id')::bigint", pgtest.Items([2]int64{filters, 1})).Scan(&id)
		}))
		ids = append(ids, id)
	}
	return ids
}
