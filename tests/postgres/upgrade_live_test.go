package postgres

// Upgrades under the previous release's clients: the request texts PostgREST 12 sent for the
// last release before migrations (frozen in testdata/releases/2026-12-05-ebc4054/requests,
// the same bytes at 2026-12-04 d35793b) still do what they did once the shop is migrated, and
// a migration applied while customers place orders through PgBouncer fails none of them.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/config"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/postgrest"
)

// previousRequestBlobs are the git blob ids of the previous release's request texts
// (tests/testkit/postgrest at ebc4054, unchanged since d35793b): the frozen copies must stay
// those bytes, whatever happens to today's texts.
var previousRequestBlobs = map[string]string{
	"place_order.sql":  "466b882cf02b81d8b8a466fea086ee9e77e81670",
	"get_products.sql": "005149157e9f1889cf4996e0b2722007c5766695",
}

// previousRequest is one of the previous release's frozen request texts, checked to be the
// release's bytes.
func previousRequest(t testing.TB, name string) postgrest.Request {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "releases", "2026-12-05-ebc4054", "requests", name))
	require.NoError(t, err)
	blob := sha1.Sum(append([]byte(fmt.Sprintf("blob %d\x00", len(b))), b...))
	require.Equal(t, previousRequestBlobs[name], hex.EncodeToString(blob[:]), "the frozen %s is no longer the release's text", name)
	return postgrest.Request{Name: name, Text: string(b)}
}

// jsonKeys are the keys of a JSON object, sorted: the shape of an answer the old clients read.
func jsonKeys(t testing.TB, obj map[string]any) string {
	t.Helper()
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// previousRequestsAnswer runs each of the previous release's requests as its PostgREST did,
// through PgBouncer, checks what each did, and returns the shape of the answers (keys of the
// order, of its lines, of a product) for comparison across the migration.
func previousRequestsAnswer(t *testing.T, admin, conn *pgx.Conn, role map[string][2]string) map[string]string {
	ctx := context.Background()
	placeOrder, getProducts := previousRequest(t, "place_order.sql"), previousRequest(t, "get_products.sql")
	users, products := pgtest.UserIDs(t, admin), pgtest.ProductIDs(t, admin)
	exp := time.Now().Add(time.Hour).Unix()
	order := func(email, items string) postgrest.Vars {
		return postgrest.OrderVars(role["web_user"][0], role["web_user"][1], users[email], email, exp, `{"items": `+items+`}`)
	}
	shapes := map[string]string{}

	for _, tc := range []struct {
		name      string
		request   postgrest.Request
		vars      postgrest.Vars
		state, in string                                                      // a refusal: its SQLSTATE and message
		check     func(t *testing.T, body string, before, after pgtest.State) // an answer
	}{
		{name: "POST /rpc/place_order places the order", request: placeOrder,
			vars: order("alice@example.com", pgtest.Items([2]int64{products["Paper Filters"], 3})),
			check: func(t *testing.T, body string, before, after pgtest.State) {
				var o map[string]any
				require.NoError(t, json.Unmarshal([]byte(body), &o), body)
				assert.EqualValues(t, users["alice@example.com"], o["user_id"])
				assert.Equal(t, "placed", o["status"])
				assert.InDelta(t, 14.97, o["total"], 0.001, "3 x 4.99")
				items, _ := o["items"].([]any)
				require.Len(t, items, 1, body)
				line, _ := items[0].(map[string]any)
				assert.Equal(t, "Paper Filters", line["product_name"])
				assert.EqualValues(t, 3, line["quantity"])
				shapes["order"], shapes["order line"] = jsonKeys(t, o), jsonKeys(t, line)
				assert.Equal(t, before.Stock["Paper Filters"]-3, after.Stock["Paper Filters"])
				assert.Equal(t, before.Orders+1, after.Orders)
				assert.Equal(t, before.Items+1, after.Items)
			}},
		{name: "POST /rpc/place_order refuses what is not in stock", request: placeOrder,
			vars:  order("bob@example.com", pgtest.Items([2]int64{products["Limited Edition Tamper"], 2})),
			state: "P0001", in: "insufficient stock"},
		{name: "POST /rpc/place_order refuses more than 10 of a product", request: placeOrder,
			vars:  order("bob@example.com", pgtest.Items([2]int64{products["Paper Filters"], 11})),
			state: "22023", in: "at most 10"},
		{name: "POST /rpc/place_order refuses a visitor", request: placeOrder,
			vars: func() postgrest.Vars {
				v := postgrest.AnonymousVars(role["web_anon"][0], role["web_anon"][1], "/rpc/place_order")
				v["body"] = `{"items": [{"product_id": 1, "quantity": 1}]}`
				return v
			}(),
			state: "42501", in: "permission denied"},
		{name: "GET /products returns the catalogue", request: getProducts,
			vars: postgrest.AnonymousVars(role["web_anon"][0], role["web_anon"][1], "/products"),
			check: func(t *testing.T, body string, before, after pgtest.State) {
				var rows []map[string]any
				require.NoError(t, json.Unmarshal([]byte(body), &rows), body)
				require.Len(t, rows, len(products))
				shapes["product"] = jsonKeys(t, rows[0])
				assert.NotContains(t, rows[0], "created_at", "the view's columns only")
				assert.Equal(t, before, after, "a read changes nothing")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := pgtest.Snapshot(t, admin)
			body, err := postgrest.Run(ctx, conn, tc.request, tc.vars)
			if tc.check == nil {
				pgtest.RequireError(t, err, tc.state, tc.in)
				assert.Equal(t, before, pgtest.Snapshot(t, admin), "a refused request changes nothing")
				return
			}
			require.NoError(t, err)
			tc.check(t, body, before, pgtest.Snapshot(t, admin))
		})
	}
	return shapes
}

// roleSettings are the one setting PostgREST applies per request for each API role, as the
// running PostgREST read them.
func roleSettings(t testing.TB, conn *pgx.Conn) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for _, role := range []string{"web_anon", "web_user"} {
		name, value, err := postgrest.RoleSetting(context.Background(), conn, role)
		require.NoError(t, err)
		out[role] = [2]string{name, value}
	}
	return out
}

// The previous release's request texts do what they did on the shop that release created,
// then, with the same PgBouncer and its server connections, on that shop migrated to today's
// schema: the same answers (the same keys), the same refusals.
func TestUpgradeKeepsThePreviousReleasesRequestsWorking(t *testing.T) {
	for _, release := range []string{"2026-12-04-d35793b", "2026-12-05-ebc4054"} { // both shipped these texts
		t.Run(release, func(t *testing.T) {
			s := pgtest.Start(t)
			runReleaseInitScripts(t, s, release)
			admin := s.Connect(t, pgtest.Database)
			pgPlaceOldOrders(t, admin)
			bouncer := pgtest.StartPgBouncer(t, s, "pgbouncer", pgtest.AuthenticatorPassword, components.PgBouncerPool(config.Defaults().Backend))
			conn, err := pgx.Connect(context.Background(), bouncer.ConnString(pgtest.AuthenticatorPassword))
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Close(context.Background()) })
			role := roleSettings(t, admin)

			var released, migrated map[string]string
			t.Run("on the release's own schema", func(t *testing.T) { released = previousRequestsAnswer(t, admin, conn, role) })
			out := s.ApplySchema(t, pgtest.Database, false)
			require.Contains(t, out, "3/u ", "the upgrade applied nothing: nothing to prove")
			require.Equal(t, pgtest.VersionRow(t), pgtest.QueryString(t, admin, "SELECT version || '|' || dirty FROM migrations.schema_migrations"))
			assert.Equal(t, role, roleSettings(t, admin), "the settings the running PostgREST applies changed")
			t.Run("on the migrated schema", func(t *testing.T) { migrated = previousRequestsAnswer(t, admin, conn, role) })
			require.Len(t, released, 3)
			assert.Equal(t, released, migrated, "the previous release's clients read other keys after the migration")
		})
	}
}

// liveOrder is one place_order request of the load: when it ran and what it answered.
type liveOrder struct {
	start, end time.Time
	user, id   int64
	err        error
}

// Customers place orders through PgBouncer with the previous release's request text, without
// a pause, while the database-migrate Job brings their shop (created by d35793b, so 000003 is
// pending) to today's schema, and for a while after: the migration succeeds, no request fails,
// and every order a customer was told about is in the database.
func TestUpgradeUnderLiveOrdersThroughPgBouncerFailsNone(t *testing.T) {
	const (
		clients  = 8               // concurrent customers, each on its own client connection
		floor    = 50              // requests wholly before, and wholly after, the migration
		keepLoad = 2 * time.Second // load after the migration finished
		deadline = 60 * time.Second
	)
	s := pgtest.Start(t)
	runReleaseInitScripts(t, s, "2026-12-04-d35793b")
	admin := s.Connect(t, pgtest.Database)
	pgPlaceOldOrders(t, admin)
	// Neither stock nor the unpaid-units cap may refuse an order of the load (a stack with
	// orderMaxOpenUnits at its maximum, as bench-orders runs): a refusal here is a failure.
	s.Exec(t, pgtest.Database, "UPDATE shop.order_limits SET max_open_units = 1000000")
	s.Exec(t, pgtest.Database, "UPDATE shop.products SET stock = 1000000")
	s.Exec(t, pgtest.Database, fmt.Sprintf(`INSERT INTO shop.users (email, name, password_hash)
		SELECT 'live' || g || '@example.com', 'Live Customer ' || g, 'live-customer-password' FROM generate_series(1, %d) g`, clients))
	users := pgtest.UserIDs(t, admin)
	var productIDs []int64
	for _, id := range pgtest.ProductIDs(t, admin) {
		productIDs = append(productIDs, id)
	}
	slices.Sort(productIDs)
	role := roleSettings(t, admin)
	placeOrder := previousRequest(t, "place_order.sql")
	bouncer := pgtest.StartPgBouncer(t, s, "pgbouncer", pgtest.AuthenticatorPassword, components.PgBouncerPool(config.Defaults().Backend))

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var done atomic.Int64
	results := make([][]liveOrder, clients)
	connectErrs := make([]error, clients)
	for c := range clients {
		email := fmt.Sprintf("live%d@example.com", c+1)
		user := users[email]
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(context.Background(), bouncer.ConnString(pgtest.AuthenticatorPassword))
			if err != nil {
				connectErrs[c] = err
				return
			}
			defer conn.Close(context.Background())
			for i := 0; ctx.Err() == nil; i++ {
				// Two lines, products and quantities changing with each order (stock taken in
				// id order by both releases' functions: no deadlock between customers).
				p1, p2 := productIDs[(c+i)%len(productIDs)], productIDs[(c+i+3)%len(productIDs)]
				body := `{"items": ` + pgtest.Items([2]int64{p1, int64(1 + i%3)}, [2]int64{p2, 1}) + `}`
				vars := postgrest.OrderVars(role["web_user"][0], role["web_user"][1], user, email, time.Now().Add(time.Hour).Unix(), body)
				r := liveOrder{start: time.Now(), user: user}
				// Never cancelled mid-request: the load stops between requests.
				answer, err := postgrest.Run(context.Background(), conn, placeOrder, vars)
				r.end, r.err = time.Now(), err
				if err == nil {
					var o struct {
						ID     int64  `json:"id"`
						UserID int64  `json:"user_id"`
						Status string `json:"status"`
					}
					if jerr := json.Unmarshal([]byte(answer), &o); jerr != nil || o.ID == 0 || o.UserID != user || o.Status != "placed" {
						r.err = fmt.Errorf("unexpected answer %q (%v)", answer, jerr)
					}
					r.id = o.ID
				}
				results[c] = append(results[c], r)
				done.Add(1)
			}
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() }) // also when a require below ends the test early

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		limit := time.Now().Add(deadline)
		for !cond() {
			require.True(t, time.Now().Before(limit), "no %s within %s (%d requests done)", what, deadline, done.Load())
			time.Sleep(50 * time.Millisecond)
		}
	}
	loadStart := time.Now()
	waitFor(fmt.Sprintf("%d requests before the migration", 2*floor), func() bool {
		return done.Load() >= 2*floor && time.Since(loadStart) >= time.Second
	})

	migrationStart := time.Now()
	out, migrationErr := s.RunMigrationJob(t, pgtest.Database, false)
	migrationEnd := time.Now()
	atMigrationEnd := done.Load()
	waitFor(fmt.Sprintf("%d requests after the migration", floor), func() bool {
		return time.Since(migrationEnd) >= keepLoad && done.Load()-atMigrationEnd >= floor+clients
	})
	stop()
	wg.Wait()

	for c, err := range connectErrs {
		require.NoError(t, err, "client %d could not connect through PgBouncer", c)
	}
	var before, during, after, failures int
	var failed []string
	var ids, owners []int64
	var slowestBefore, slowestDuring, slowestAfter time.Duration
	for _, rs := range results {
		for _, r := range rs {
			took, when := r.end.Sub(r.start), phase(r, migrationStart, migrationEnd)
			switch when {
			case "before":
				before++
				slowestBefore = max(slowestBefore, took)
			case "after":
				after++
				slowestAfter = max(slowestAfter, took)
			default:
				during++
				slowestDuring = max(slowestDuring, took)
			}
			if r.err != nil {
				failures++
				failed = append(failed, fmt.Sprintf("%s (started %s from the migration's start, took %s): %v",
					when, r.start.Sub(migrationStart).Round(time.Millisecond), took.Round(time.Millisecond), r.err))
				continue
			}
			ids, owners = append(ids, r.id), append(owners, r.user)
		}
	}
	t.Logf("migration (database-migrate Job: bootstrap, migrate, verify) took %s; %d clients through PgBouncer",
		migrationEnd.Sub(migrationStart).Round(time.Millisecond), clients)
	t.Logf("requests: %d before, %d during, %d after the migration (%d in all); %d failed",
		before, during, after, before+during+after, failures)
	t.Logf("slowest request: %s before, %s during, %s after",
		slowestBefore.Round(time.Millisecond), slowestDuring.Round(time.Millisecond), slowestAfter.Round(time.Millisecond))
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "/u ") {
			t.Logf("golang-migrate: %s", line)
		}
	}

	require.NoError(t, migrationErr, "the migration failed under load:\n%s", out)
	assert.Contains(t, out, "3/u order_path_speed")
	assert.Equal(t, pgtest.VersionRow(t), pgtest.QueryString(t, admin, "SELECT version || '|' || dirty FROM migrations.schema_migrations"))
	assert.GreaterOrEqual(t, before, floor, "requests wholly before the migration")
	assert.Positive(t, during, "no request ran while the migration did: nothing to prove")
	assert.GreaterOrEqual(t, after, floor, "requests wholly after the migration")
	assert.Zero(t, failures, "failed requests (first of them):\n%s", strings.Join(failed[:min(len(failed), 10)], "\n"))

	// Every order a customer was answered is there, the customer's, with its lines.
	assert.Len(t, ids, before+during+after-failures)
	assert.Equal(t, fmt.Sprint(len(ids)), pgtest.QueryString(t, admin, `SELECT count(DISTINCT o.id)::text
		FROM unnest($1::bigint[], $2::bigint[]) AS a(id, user_id)
		JOIN shop.orders o ON o.id = a.id AND o.user_id = a.user_id AND o.status = 'placed'
		WHERE EXISTS (SELECT 1 FROM shop.order_items i WHERE i.order_id = o.id)`, ids, owners),
		"an acknowledged order is missing, another customer's, or without its lines")
	// ... and nothing else was written by the load.
	assert.Equal(t, fmt.Sprint(len(ids)), pgtest.QueryString(t, admin,
		"SELECT count(*)::text FROM shop.orders o JOIN shop.users u ON u.id = o.user_id WHERE u.email LIKE 'live%@example.com'"))
}

// phase names when a request ran relative to the migration.
func phase(r liveOrder, start, end time.Time) string {
	switch {
	case r.end.Before(start):
		return "before"
	case r.start.After(end):
		return "after"
	}
	return "during"
}
