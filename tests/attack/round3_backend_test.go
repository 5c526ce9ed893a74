package attack

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// iniSeconds is a whole-seconds setting of a rendered pgbouncer.ini (0 when it is not set).
func iniSeconds(t *testing.T, ini, name string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` = (\d+)$`).FindStringSubmatch(ini)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

// 7. A compromised backend (the authenticator's password) was bounded only by settings it may
// change: the roles' statement_timeout is a default the session SETs away (pg_sleep(11)
// finished under 10 s), and temporary tables are not counted by temp_file_limit (112 MB
// written under 64 MB). Now, with the backend's own login through PgBouncer on the deployed
// pgbouncer.ini: a statement that outlives PgBouncer's query_timeout is cut, on the client and
// on the server; a transaction left idle holding an order's row locks is ended at
// idle_transaction_timeout and its locks released; and no API role may create a temporary
// table. A customer's order through the same pool still works.
func TestAttackRound3BackendCannotLiftItsLimits(t *testing.T) {
	// The deployed ini, in every stack, sets both limits; the pool below runs the same file.
	api := startRound3API(t)
	queryTimeout := iniSeconds(t, api.bouncer.Ini, "query_timeout")
	idleTimeout := iniSeconds(t, api.bouncer.Ini, "idle_transaction_timeout")
	for _, stack := range []string{"dev", "prod"} {
		ini := testkit.TypedConfigMap(t, testkit.MustRun(t, stack, nil), "backend-config").Data["pgbouncer.ini"]
		assert.Equal(t, queryTimeout, iniSeconds(t, ini, "query_timeout"), stack)
		assert.Equal(t, idleTimeout, iniSeconds(t, ini, "idle_transaction_timeout"), stack)
	}
	// Above the authenticator's statement_timeout (10 s), so a request's own timeout answers
	// first, and below Envoy's default route timeout (15 s).
	assert.Equal(t, 12, queryTimeout, "PgBouncer's query_timeout")
	assert.Equal(t, 10, idleTimeout, "PgBouncer's idle_transaction_timeout")

	ctx := context.Background()
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, api.bouncer.ConnString(pgtest.AuthenticatorPassword))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	u, p := pgtest.UserIDs(t, api.admin), pgtest.ProductIDs(t, api.admin)

	// No temporary table, for the login role or the roles it becomes.
	t.Run("temporary tables", func(t *testing.T) {
		creator := connect()
		_, err := creator.Exec(ctx, "CREATE TEMP TABLE spill (data text)")
		pgtest.RequireError(t, err, "42501", "permission denied to create temporary tables in database")
		for _, role := range []string{"web_user", "web_anon"} {
			err := pgtest.AsRole(ctx, creator, role, pgtest.Claims(u["demo@example.com"]), false, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "CREATE TEMPORARY TABLE spill AS SELECT repeat('x', 1000) FROM generate_series(1, 10)")
				return err
			})
			pgtest.RequireError(t, err, "42501", "permission denied to create temporary tables in database")
		}
	})

	// A statement with statement_timeout lifted, in the background: PgBouncer cuts it.
	type cut struct {
		took time.Duration
		err  error
	}
	sleeper := connect()
	assert.Equal(t, "10s", pgtest.QueryString(t, sleeper, "SHOW statement_timeout"), "the authenticator's default")
	_, err := sleeper.Exec(ctx, "SET statement_timeout = 0")
	require.NoError(t, err, "a session may lift its role's default")
	done := make(chan cut, 1)
	go func() {
		// Bounded here in case nothing cuts it (pgx then cancels it).
		bounded, cancel := context.WithTimeout(ctx, time.Duration(queryTimeout+15)*time.Second)
		defer cancel()
		start := time.Now()
		_, err := sleeper.Exec(bounded, "SELECT pg_sleep(3600) /* round3 sleeper */")
		done <- cut{time.Since(start), err}
	}()

	// Meanwhile a transaction places an order (the product's and the customer's rows are
	// locked) and is left idle: the owner's write of that product waits for it.
	t.Run("an idle transaction", func(t *testing.T) {
		idler := connect()
		tx, err := idler.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT set_config('request.jwt.claims', $1, true)", pgtest.Claims(u["demo@example.com"]))
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SET LOCAL ROLE web_user")
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT api.place_order($1::text::jsonb)", pgtest.Items([2]int64{p["Espresso Mug"], 1}))
		require.NoError(t, err)
		idleSince := time.Now()
		writer := api.s.Connect(t, pgtest.Database)
		_, err = writer.Exec(ctx, "SET lock_timeout = '30s'")
		require.NoError(t, err)
		_, err = writer.Exec(ctx, "UPDATE shop.products SET stock = stock WHERE id = $1", p["Espresso Mug"])
		waited := time.Since(idleSince)
		require.NoError(t, err, "the idle transaction still held the product's row after %s", waited)
		t.Logf("a write waited %s for an order's transaction left idle (idle_transaction_timeout %d s)", waited.Round(time.Millisecond), idleTimeout)
		assert.Less(t, waited, time.Duration(idleTimeout+5)*time.Second, "the idle transaction held its locks past idle_transaction_timeout")
		assert.Error(t, tx.Commit(ctx), "the idle transaction's connection was closed")
		assert.Equal(t, "0", pgtest.QueryString(t, api.admin, "SELECT count(*)::text FROM shop.orders"), "the idle transaction's order was rolled back")
	})

	t.Run("a statement with statement_timeout lifted", func(t *testing.T) {
		c := <-done
		t.Logf("pg_sleep(3600) with statement_timeout lifted ended after %s: %v", c.took.Round(time.Millisecond), c.err)
		require.Error(t, c.err)
		assert.GreaterOrEqual(t, c.took, time.Duration(queryTimeout)*time.Second)
		assert.Less(t, c.took, time.Duration(queryTimeout+5)*time.Second, "the statement outlived PgBouncer's query_timeout")
		// The server ends the statement once its connection is gone (client_connection_check_interval).
		require.Eventually(t, func() bool {
			return pgtest.QueryString(t, api.admin, `SELECT count(*)::text FROM pg_stat_activity
			WHERE usename = 'authenticator' AND query LIKE '%round3 sleeper%' AND pid <> pg_backend_pid()`) == "0"
		}, 5*time.Second, 100*time.Millisecond, "the server still runs the statement PgBouncer cut")
	})

	// PostgREST's requests need none of what was taken away.
	_, status, msg := api.order(t, u["alice@example.com"], "alice@example.com", `{"items": `+pgtest.Items([2]int64{p["Espresso Mug"], 1})+`}`, nil)
	assert.Equal(t, http.StatusOK, status, msg)
}
