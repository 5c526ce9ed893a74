package postgres

// Engine tests of the order path's bounds (issue 18, finding 2): the cap on a customer's
// unpaid units as credentials-sync.sh sets it, and shop.release_unpaid_orders beside a load
// of orders, on PostgreSQL 15 with the deployed SQL.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit/pgtest"
)

// syncOrderLimit runs the credentials Job's script with one order limit's variable (NAME=value)
// and reads that column of shop.order_limits back.
func syncOrderLimit(t *testing.T, s *pgtest.Server, conn *pgx.Conn, column, env string) string {
	t.Helper()
	out, err := s.TrySyncCredentialsEnv(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, env)
	require.NoError(t, err, out)
	return pgtest.QueryString(t, conn, "SELECT "+column+"::text FROM shop.order_limits")
}

// The stack's orderMaxOpenUnits reaches shop.order_limits through the credentials Job's
// script, and place_order holds a customer to it; a value outside the key's range is refused.
func TestOrderCapFromCredentialsJob(t *testing.T) {
	s, conn := pgtest.Seeded(t)
	ctx := context.Background()
	assert.Equal(t, "40", pgtest.QueryString(t, conn, "SELECT max_open_units::text FROM shop.order_limits"), "the default before the Job runs")
	assert.Equal(t, "25", syncOrderLimit(t, s, conn, "max_open_units", "ORDER_MAX_OPEN_UNITS=25"))
	p := pgtest.ProductIDs(t, conn)
	demo := pgtest.UserIDs(t, conn)["demo@example.com"]
	_, err := conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", demo, pgtest.Items([2]int64{p["Paper Filters"], 10}, [2]int64{p["Espresso Mug"], 10}))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", demo, pgtest.Items([2]int64{p["Paper Filters"], 6}))
	pgtest.RequireError(t, err, "P0001", "too many unpaid items: 20 units of earlier orders are unpaid, and a customer may hold at most 25 unpaid units")
	_, err = conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", demo, pgtest.Items([2]int64{p["Paper Filters"], 5}))
	require.NoError(t, err, "25 units is the cap itself")
	// Paid orders do not count.
	_, err = conn.Exec(ctx, "UPDATE shop.orders SET status = 'paid'")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", demo, pgtest.Items([2]int64{p["Paper Filters"], 10}))
	require.NoError(t, err)

	for _, bad := range []string{"12x", "-1"} {
		out, err := s.TrySyncCredentialsEnv(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, "ORDER_MAX_OPEN_UNITS="+bad)
		require.Error(t, err, bad)
		assert.Contains(t, out, "ORDER_MAX_OPEN_UNITS must be a positive integer")
	}
	out, err := s.TrySyncCredentialsEnv(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, "ORDER_MAX_OPEN_UNITS=5")
	require.Error(t, err, "below one full order: the table's check refuses it")
	assert.Contains(t, out, "order_limits_max_open_units_check")
	assert.Equal(t, "25", pgtest.QueryString(t, conn, "SELECT max_open_units::text FROM shop.order_limits"), "nothing changed")

	// A database created before the table existed: the Job still sets the credentials.
	_, err = conn.Exec(ctx, "DROP TABLE shop.order_limits")
	require.NoError(t, err)
	out, err = s.TrySyncCredentialsEnv(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, "ORDER_MAX_OPEN_UNITS=25")
	require.NoError(t, err, out)
}

// The stack's orderMaxProductSharePercent reaches shop.order_limits through the credentials
// Job's script (issue 27, finding 5), and place_order holds each customer to that share of a
// product, also when one customer's orders race each other and other customers' orders race
// them: a value outside the key's range is refused, an older schema is left alone.
func TestOrderProductShareFromCredentialsJob(t *testing.T) {
	s, conn := pgtest.Seeded(t)
	ctx := context.Background()
	assert.Equal(t, "50", pgtest.QueryString(t, conn, "SELECT max_product_share_percent::text FROM shop.order_limits"), "the default before the Job runs")
	assert.Equal(t, "25", syncOrderLimit(t, s, conn, "max_product_share_percent", "ORDER_MAX_PRODUCT_SHARE_PERCENT=25"))
	for bad, says := range map[string]string{"x": "ORDER_MAX_PRODUCT_SHARE_PERCENT must be a positive integer", "51": "order_limits_max_product_share_percent_check",
		"0": "order_limits_max_product_share_percent_check"} {
		out, err := s.TrySyncCredentialsEnv(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, "ORDER_MAX_PRODUCT_SHARE_PERCENT="+bad)
		require.Error(t, err, bad)
		assert.Contains(t, out, says, bad)
	}
	assert.Equal(t, "25", pgtest.QueryString(t, conn, "SELECT max_product_share_percent::text FROM shop.order_limits"), "nothing changed")

	// 25 percent of 40 mugs: 10 for one customer, however they order them; 8 racing orders of
	// 3 mugs each from one customer (their row lock lets one at a time through) and 8 of
	// other customers at once.
	_, err := conn.Exec(ctx, "UPDATE shop.products SET stock = 40 WHERE name = 'Espresso Mug'")
	require.NoError(t, err)
	p := pgtest.ProductIDs(t, conn)
	u := pgtest.UserIDs(t, conn)
	var wg sync.WaitGroup
	results := make(chan error, 16)
	for i := range 16 {
		c := s.Connect(t, pgtest.Database)
		user := u["demo@example.com"]
		if i%2 == 1 {
			user = u[[]string{"alice@example.com", "bob@example.com"}[i%4/2]]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", user, pgtest.Items([2]int64{p["Espresso Mug"], 3}))
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			pgtest.RequireError(t, err, "P0001", `too many unpaid units of product "Espresso Mug"`)
		}
	}
	held := pgtest.NumbersByKey(t, conn, `SELECT u.email, sum(i.quantity) FROM shop.orders o JOIN shop.users u ON u.id = o.user_id
		JOIN shop.order_items i ON i.order_id = o.id WHERE o.status = 'placed' GROUP BY u.email`)
	stock := pgtest.QueryString(t, conn, "SELECT stock::text FROM shop.products WHERE name = 'Espresso Mug'")
	t.Logf("unpaid mugs per customer after 16 racing orders of 3: %v; %s left", held, stock)
	total := int64(0)
	for email, n := range held {
		assert.LessOrEqual(t, n, int64(10), "%s holds more than 25 percent of 40 mugs", email)
		assert.Positive(t, n, email)
		total += n
	}
	assert.Equal(t, fmt.Sprint(40-total), stock, "every unit is accounted for")

	// A shop whose migration 000005 has not run: the Job sets the credentials and the cap.
	_, err = conn.Exec(ctx, "ALTER TABLE shop.order_limits DROP COLUMN max_product_share_percent CASCADE")
	require.NoError(t, err)
	out, err := s.TrySyncCredentialsEnv(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret,
		"ORDER_MAX_OPEN_UNITS=30", "ORDER_MAX_PRODUCT_SHARE_PERCENT=25")
	require.NoError(t, err, out)
	assert.Equal(t, "30", pgtest.QueryString(t, conn, "SELECT max_open_units::text FROM shop.order_limits"))
}

// shop.release_unpaid_orders runs beside a load of orders on the same products (and beside
// itself): no deadlock, no error, every old unpaid order released exactly once, and for every
// product the stock plus the units of the orders not cancelled is what it started with.
func TestReleaseUnpaidBesidePlaceOrder(t *testing.T) {
	s, admin := pgtest.Seeded(t)
	ctx := context.Background()
	_, err := admin.Exec(ctx, "UPDATE shop.products SET stock = 100000; UPDATE shop.order_limits SET max_open_units = 1000000")
	require.NoError(t, err)
	initial := pgtest.Snapshot(t, admin).Stock
	var products []int64
	for _, id := range pgtest.ProductIDs(t, admin) {
		products = append(products, id)
	}
	users := pgtest.UserIDs(t, admin)
	var buyers []int64
	for _, id := range users {
		buyers = append(buyers, id)
	}
	randomItems := func(r *rand.Rand) string {
		var lines [][2]int64
		for range 1 + r.IntN(4) {
			lines = append(lines, [2]int64{products[r.IntN(len(products))], int64(1 + r.IntN(5))})
		}
		return pgtest.Items(lines...)
	}
	// 300 old unpaid orders, and 20 paid ones as old, which stay.
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 320 {
		_, err := admin.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", buyers[i%len(buyers)], randomItems(r))
		require.NoError(t, err)
	}
	_, err = admin.Exec(ctx, `UPDATE shop.orders SET created_at = now() - interval '2 hours';
		UPDATE shop.orders SET status = 'paid' WHERE id IN (SELECT id FROM shop.orders ORDER BY id LIMIT 20)`)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	released := make(chan int, 3)
	for c := range 6 {
		conn := s.Connect(t, pgtest.Database)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for range 60 {
				if err := pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(buyers[c%len(buyers)]), true, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "SELECT api.place_order($1::text::jsonb)", randomItems(r))
					return err
				}); err != nil {
					errs <- fmt.Errorf("order: %w", err)
					return
				}
			}
		}()
	}
	for range 3 {
		conn := s.Connect(t, pgtest.Database)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int
			if err := conn.QueryRow(ctx, "SELECT shop.release_unpaid_orders(interval '1 hour')").Scan(&n); err != nil {
				errs <- fmt.Errorf("release: %w", err)
				return
			}
			released <- n
		}()
	}
	wg.Wait()
	close(errs)
	close(released)
	for err := range errs {
		t.Error(err) // a deadlock (40P01) or anything else
	}
	total := 0
	for n := range released {
		total += n
	}
	assert.Equal(t, 300, total, "every old unpaid order released exactly once")
	assert.Equal(t, "cancelled:300|paid:20|placed:360", pgtest.QueryString(t, admin,
		"SELECT string_agg(status || ':' || n, '|' ORDER BY status) FROM (SELECT status, count(*) AS n FROM shop.orders GROUP BY status) AS s"))
	assert.Equal(t, "", pgtest.QueryString(t, admin, `
		SELECT coalesce(string_agg(p.name, ','), '') FROM shop.products p
		 WHERE p.stock + coalesce((SELECT sum(i.quantity) FROM shop.order_items i JOIN shop.orders o ON o.id = i.order_id
		                            WHERE i.product_id = p.id AND o.status <> 'cancelled'), 0)
		       <> ($1::jsonb ->> p.name)::bigint`, initial), "stock plus units held is what each product started with")
	// The age is checked: releasing everything at once is refused.
	_, err = admin.Exec(ctx, "SELECT shop.release_unpaid_orders(interval '0')")
	pgtest.RequireError(t, err, "22023", "the age must be at least 1 minute")
}

// What one order reads does not grow with the customer's history or with the catalogue: the
// cap's sum reads only unpaid orders (orders_placed_user_id_idx), and the answer's plan, kept
// for the session (plan_cache_mode), looks product names up by key instead of joining the
// catalogue. Counted as the rows one api.place_order call reads from each table
// (pg_stat_xact_user_tables: sequential and index fetches, the function's statements and
// foreign-key checks included), in a warm session, on a shop of 10,000 products and 20,000
// orders of other customers (half unpaid), before and after 300 paid orders of the customer.
func TestOrderReadsDoNotGrowWithHistoryOrCatalogue(t *testing.T) {
	s, admin := pgtest.Seeded(t)
	ctx := context.Background()
	users := pgtest.UserIDs(t, admin)
	demo := users["demo@example.com"]
	p := pgtest.ProductIDs(t, admin)
	items := pgtest.Items([2]int64{p["Espresso Mug"], 1}, [2]int64{p["Paper Filters"], 1})
	conn := s.Connect(t, pgtest.Database)
	orders := func(user int64, status string, n int) {
		_, err := admin.Exec(ctx, `WITH o AS (INSERT INTO shop.orders (user_id, status, total) SELECT $1::bigint, $4, 4.5 FROM generate_series(1, $3::int) RETURNING id)
			INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price) SELECT o.id, $2::bigint, 1, 4.5 FROM o`, user, p["Espresso Mug"], n, status)
		require.NoError(t, err)
		_, err = admin.Exec(ctx, "ANALYZE")
		require.NoError(t, err)
	}

	rowsRead := func(tx pgx.Tx) map[string]int64 {
		return pgtest.NumbersByKey(t, tx, `SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
			FROM pg_stat_xact_user_tables WHERE schemaname = 'shop' AND relname IN ('orders', 'order_items', 'products', 'users')`)
	}
	oneOrder := func() map[string]int64 {
		delta := map[string]int64{}
		require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(demo), false, func(tx pgx.Tx) error {
			for range 3 { // the session's plans are made on the first calls
				if _, err := tx.Exec(ctx, "SELECT api.place_order($1::text::jsonb)", items); err != nil {
					return err
				}
			}
			before := rowsRead(tx)
			if _, err := tx.Exec(ctx, "SELECT api.place_order($1::text::jsonb)", items); err != nil {
				return err
			}
			for name, n := range rowsRead(tx) {
				delta[name] = n - before[name]
			}
			return nil
		}))
		return delta
	}

	_, err := admin.Exec(ctx, `INSERT INTO shop.products (name, price, stock) SELECT 'Bulk product ' || g, 1, 10 FROM generate_series(1, 10000) g`)
	require.NoError(t, err)
	orders(users["alice@example.com"], "paid", 10000)
	orders(users["bob@example.com"], "placed", 10000) // unpaid orders in the shop, not the customer's
	newCustomer := oneOrder()
	orders(demo, "paid", 300)
	regular := oneOrder()

	t.Logf("rows one order of 2 lines reads: %v for a new customer, %v after 300 paid orders", newCustomer, regular)
	for name, n := range regular {
		assert.LessOrEqualf(t, n, newCustomer[name], "rows read from shop.%s: the customer's paid orders are not read", name)
	}
	assert.Len(t, regular, 4)
	// Per line: the stock's UPDATE, the foreign-key check of the line and the product's name
	// in the answer; nothing else of the catalogue.
	assert.Equal(t, int64(6), regular["products"], "rows read from shop.products")
}
