package postgres

// Engine tests of the database tier: the deployed init scripts, postgresql.conf, backup.sh
// and the documented restore command, run by a real PostgreSQL 15 (see tests/testkit/pgtest).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit/pgtest"
)

// The dev seed's products (90-seed-dev.sql): price and stock.
var pgSeedProducts = map[string]struct {
	Price string
	Stock int
}{
	"Espresso Mug":           {"12.50", 40},
	"Pour-Over Kettle":       {"39.90", 12},
	"Coffee Grinder":         {"89.00", 3},
	"Paper Filters":          {"4.99", 200},
	"Single-Origin Beans":    {"14.75", 25},
	"Cold Brew Bottle":       {"24.00", 8},
	"Barista Apron":          {"29.95", 4},
	"Limited Edition Tamper": {"59.00", 1},
}

// The schema as the database-migrate Job applies it (bootstrap, golang-migrate, verify), with
// and without the dev seed; a second run changes nothing (no second seed, same catalog).
func TestPostgresSchemaApplies(t *testing.T) {
	for _, tc := range []struct {
		name             string
		seed             bool
		users, products  int
		lowStockProducts int
	}{
		{name: "with dev seed", seed: true, users: 3, products: 8, lowStockProducts: 3},
		{name: "without dev seed", seed: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := pgtest.Start(t)
			out := s.ApplySchema(t, pgtest.Database, tc.seed)
			assert.Contains(t, out, pgtest.VerifiedClean(t))
			s.SyncCredentials(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret)
			conn := s.Connect(t, pgtest.Database)
			assert.NotContains(t, out, s.MigratorPassword(t, pgtest.Database), "a migration run printed the migrator's password")
			ctx := context.Background()

			var products, orders, itemsSold, lowStock int
			var users *int
			var revenue string
			// Signed in: the order figures are withheld from anonymous visitors; a customer's
			// are their own, and the number of users is nobody's (issue 27, finding 8).
			require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(1), false, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx,
					"SELECT users, products, orders, revenue::text, items_sold, low_stock_products FROM api.stats").
					Scan(&users, &products, &orders, &revenue, &itemsSold, &lowStock)
			}))
			assert.Nil(t, users)
			assert.Equal(t, fmt.Sprint(tc.users), pgtest.QueryString(t, conn, "SELECT count(*)::text FROM shop.users"))
			assert.Equal(t, tc.products, products)
			assert.Equal(t, 0, orders)
			assert.Equal(t, "0.00", revenue)
			assert.Equal(t, 0, itemsSold)
			assert.Equal(t, tc.lowStockProducts, lowStock)

			// Every object the API and the tests rely on exists.
			for _, obj := range []string{"shop.users", "shop.products", "shop.orders", "shop.order_items",
				"api.products", "api.users", "api.orders", "api.stats"} {
				assert.Equal(t, obj, pgtest.QueryString(t, conn, "SELECT to_regclass($1)::text", obj))
			}
			for _, fn := range []string{"shop.place_order(bigint,jsonb)", "api.place_order(jsonb)", "api.login(text,text)"} {
				assert.NotEmpty(t, pgtest.QueryString(t, conn, "SELECT coalesce(to_regprocedure($1)::text, '')", fn), fn)
			}
			for _, idx := range []string{"users_email_lower_key", "orders_user_id_created_at_idx",
				"order_items_order_product_key", "order_items_product_id_idx"} {
				assert.Equal(t, "shop."+idx, pgtest.QueryString(t, conn, "SELECT coalesce(to_regclass('shop.'||$1)::text, '')", idx))
			}
			// Roles as bootstrap.sql makes them.
			assert.Equal(t, "api_owner:false:false|authenticator:true:false|migrator:true:false|web_anon:false:true|web_user:false:true", pgtest.QueryString(t, conn, `
				SELECT string_agg(rolname || ':' || rolcanlogin || ':' || rolinherit, '|' ORDER BY rolname)
				  FROM pg_roles WHERE rolname IN ('api_owner', 'migrator', 'authenticator', 'web_anon', 'web_user')`))
			assert.Equal(t, "true", pgtest.QueryString(t, conn,
				"SELECT (pg_has_role('authenticator', 'web_anon', 'MEMBER') AND pg_has_role('authenticator', 'web_user', 'MEMBER'))::text"))
			assert.Equal(t, "SCRAM-SHA-256", pgtest.QueryString(t, conn,
				"SELECT split_part(rolpassword, '$', 1) FROM pg_authid WHERE rolname = 'authenticator'"))
			if tc.seed {
				// No plain password is stored: the trigger hashed them all with bcrypt.
				assert.Equal(t, "0", pgtest.QueryString(t, conn,
					`SELECT count(*)::text FROM shop.users WHERE password_hash !~ '^\$2a\$10\$' OR password_hash LIKE '%-password%'`))
				for name, want := range pgSeedProducts {
					assert.Equal(t, fmt.Sprintf("%s|%d", want.Price, want.Stock), pgtest.QueryString(t, conn,
						"SELECT price::text || '|' || stock FROM api.products WHERE name = $1", name), name)
				}
			}
			// A second run (the Job again with the same migrations) changes nothing.
			before := pgCatalog(t, conn)
			again := s.ApplySchema(t, pgtest.Database, tc.seed)
			assert.Contains(t, again, pgtest.VerifiedClean(t))
			assert.Equal(t, before, pgCatalog(t, conn))
			assert.Equal(t, strconv.Itoa(tc.users), pgtest.QueryString(t, conn, "SELECT count(*)::text FROM shop.users"), "no second seed")
			// And into a second database of the server.
			s.Exec(t, "postgres", "CREATE DATABASE again")
			s.ApplySchema(t, "again", tc.seed)
		})
	}
}

func TestPostgresConfRendered(t *testing.T) {
	s := pgtest.Start(t)
	conn := s.Connect(t, "postgres")
	// The server was started with the rendered file: its values are in force.
	for setting, want := range map[string]string{
		"config_file":                s.ConfPath,
		"port":                       fmt.Sprint(s.Port),
		"max_connections":            "100",
		"shared_buffers":             "256MB",
		"work_mem":                   "4MB",
		"effective_cache_size":       "768MB",
		"log_min_duration_statement": "500ms",
		"unix_socket_directories":    s.SocketDir,
		"password_encryption":        "scram-sha-256",
		"log_destination":            "stderr",
		"logging_collector":          "off",
		"TimeZone":                   "UTC",
		"hba_file":                   s.Settings.HBAFile,
		"wal_level":                  "replica",
		"max_slot_wal_keep_size":     "2GB",
		"hot_standby_feedback":       "on",
	} {
		assert.Equal(t, want, pgtest.QueryString(t, conn, "SELECT current_setting($1)", setting), setting)
	}
	// The file has no setting PostgreSQL rejects, and everything but listen_addresses (made
	// 127.0.0.1 on the test's command line) is applied from it.
	assert.Equal(t, "", pgtest.QueryString(t, conn, `
		SELECT coalesce(string_agg(name || ': ' || error, '; '), '') FROM pg_file_settings
		 WHERE error IS NOT NULL AND NOT (name = 'listen_addresses' AND error = 'setting could not be applied')`))
	assert.Equal(t, "listen_addresses", pgtest.QueryString(t, conn,
		"SELECT coalesce(string_agg(name, ','), '') FROM pg_file_settings WHERE sourcefile = $1 AND NOT applied", s.ConfPath))
	assert.Equal(t, "*", pgtest.QueryString(t, conn,
		"SELECT setting FROM pg_file_settings WHERE sourcefile = $1 AND name = 'listen_addresses'", s.ConfPath))
}

func TestPostgresPlaceOrder(t *testing.T) {
	_, conn := pgtest.Seeded(t)
	ctx := context.Background()
	p := pgtest.ProductIDs(t, conn)
	demo := pgtest.UserIDs(t, conn)["demo@example.com"]

	for _, tc := range []struct {
		name      string
		items     string
		total     string
		lines     string // product:quantity:unit_price, by product id
		stockDiff map[string]int
	}{
		{
			name:      "two products",
			items:     pgtest.Items([2]int64{p["Espresso Mug"], 2}, [2]int64{p["Pour-Over Kettle"], 1}),
			total:     "64.90",
			lines:     "Espresso Mug:2:12.50|Pour-Over Kettle:1:39.90",
			stockDiff: map[string]int{"Espresso Mug": -2, "Pour-Over Kettle": -1},
		},
		{
			name:      "repeated product is one line",
			items:     pgtest.Items([2]int64{p["Paper Filters"], 3}, [2]int64{p["Paper Filters"], 4}),
			total:     "34.93",
			lines:     "Paper Filters:7:4.99",
			stockDiff: map[string]int{"Paper Filters": -7},
		},
		{
			// One customer may take a product's last unit, not more than half of a larger
			// stock (issue 27, finding 5).
			name:      "the whole stock, its last unit",
			items:     pgtest.Items([2]int64{p["Limited Edition Tamper"], 1}),
			total:     "59.00",
			lines:     "Limited Edition Tamper:1:59.00",
			stockDiff: map[string]int{"Limited Edition Tamper": -1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := pgtest.Snapshot(t, conn)
			var orderID, userID int64
			var total, status string
			require.NoError(t, conn.QueryRow(ctx,
				"SELECT id, user_id, total::text, status FROM shop.place_order($1, $2::text::jsonb)", demo, tc.items).
				Scan(&orderID, &userID, &total, &status))
			assert.Equal(t, demo, userID)
			assert.Equal(t, tc.total, total)
			assert.Equal(t, "placed", status)
			assert.Equal(t, tc.lines, pgtest.QueryString(t, conn, `
				SELECT string_agg(p.name || ':' || i.quantity || ':' || i.unit_price, '|' ORDER BY p.id)
				  FROM shop.order_items i JOIN shop.products p ON p.id = i.product_id WHERE i.order_id = $1`, orderID))
			after := pgtest.Snapshot(t, conn)
			want := pgtest.State{Stock: map[string]int{}, Orders: before.Orders + 1, Items: before.Items + strings.Count(tc.lines, "|") + 1}
			for name, stock := range before.Stock {
				want.Stock[name] = stock + tc.stockDiff[name]
			}
			assert.Equal(t, want, after)
		})
	}
}

func TestPostgresPlaceOrderRejects(t *testing.T) {
	_, conn := pgtest.Seeded(t)
	ctx := context.Background()
	p := pgtest.ProductIDs(t, conn)
	demo := pgtest.UserIDs(t, conn)["demo@example.com"]

	for _, tc := range []struct {
		name     string
		userID   int64
		items    string
		sqlState string
		message  string
	}{
		{"short stock", demo, pgtest.Items([2]int64{p["Limited Edition Tamper"], 2}), "P0001",
			fmt.Sprintf(`insufficient stock for product "Limited Edition Tamper" (id %d): requested 2, available 1`,
				p["Limited Edition Tamper"])},
		{"short stock after an item that fits", demo,
			pgtest.Items([2]int64{p["Espresso Mug"], 1}, [2]int64{p["Barista Apron"], 3}, [2]int64{p["Barista Apron"], 2}), "P0001",
			`insufficient stock for product "Barista Apron"`},
		{"empty items", demo, `[]`, "22023", "an order needs at least one item"},
		{"items not an array", demo, `{"product_id": 1, "quantity": 1}`, "22023", "an order needs at least one item"},
		{"zero quantity", demo, pgtest.Items([2]int64{p["Espresso Mug"], 0}), "22023", "item 1: quantity must be a positive integer"},
		{"negative quantity", demo, pgtest.Items([2]int64{p["Espresso Mug"], 1}, [2]int64{p["Paper Filters"], -2}), "22023",
			"item 2: quantity must be a positive integer"},
		{"fractional quantity", demo, `[{"product_id": 1, "quantity": 1.5}]`, "22023", "quantity must be a positive integer"},
		{"missing quantity", demo, `[{"product_id": 1}]`, "22023", `item 1 must be an object with numeric "product_id" and "quantity"`},
		{"quantity as text", demo, `[{"product_id": 1, "quantity": "2"}]`, "22023", "item 1 must be an object"},
		{"unknown product", demo, pgtest.Items([2]int64{p["Espresso Mug"], 1}, [2]int64{9999, 1}), "P0001", "unknown product 9999"},
		{"unknown user", 9999, pgtest.Items([2]int64{p["Espresso Mug"], 1}), "28000", "unknown user 9999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := pgtest.Snapshot(t, conn)
			_, err := conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", tc.userID, tc.items)
			pgtest.RequireError(t, err, tc.sqlState, tc.message)
			assert.Equal(t, before, pgtest.Snapshot(t, conn), "a refused order changed something")
		})
	}
	// Nothing at all was written by the refused orders.
	final := pgtest.Snapshot(t, conn)
	assert.Zero(t, final.Orders)
	assert.Zero(t, final.Items)
	for name, want := range pgSeedProducts {
		assert.Equal(t, want.Stock, final.Stock[name], name)
	}
}

func TestPostgresConcurrentOrdersForLastItem(t *testing.T) {
	s, admin := pgtest.Seeded(t)
	ctx := context.Background()
	tamper := pgtest.ProductIDs(t, admin)["Limited Edition Tamper"]
	users := pgtest.UserIDs(t, admin)
	buyers := []int64{users["demo@example.com"], users["alice@example.com"], users["bob@example.com"]}
	require.Equal(t, 1, pgtest.Snapshot(t, admin).Stock["Limited Edition Tamper"])

	const clients = 8
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = s.Connect(t, pgtest.Database)
	}
	start := make(chan struct{})
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)",
				buyers[i%len(buyers)], pgtest.Items([2]int64{tamper, 1}))
		}()
	}
	close(start)
	wg.Wait()

	succeeded := 0
	for _, err := range errs {
		if err == nil {
			succeeded++
			continue
		}
		pgtest.RequireError(t, err, "P0001", `insufficient stock for product "Limited Edition Tamper"`)
	}
	assert.Equal(t, 1, succeeded, "exactly one order gets the last item")
	after := pgtest.Snapshot(t, admin)
	assert.Equal(t, 0, after.Stock["Limited Edition Tamper"])
	assert.Equal(t, 1, after.Orders)
	assert.Equal(t, 1, after.Items)
	assert.Equal(t, "59.00", pgtest.QueryString(t, admin, "SELECT total::text FROM shop.orders"))
}

func TestPostgresStats(t *testing.T) {
	_, conn := pgtest.Seeded(t)
	ctx := context.Background()
	p := pgtest.ProductIDs(t, conn)
	u := pgtest.UserIDs(t, conn)
	// Each customer's own figures (issue 27, finding 8): demo's and alice's, side by side.
	stats := func() string {
		var figures []string
		for _, email := range []string{"demo@example.com", "alice@example.com"} {
			var out string
			require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(u[email]), false, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `
					SELECT format('users=%s products=%s orders=%s revenue=%s items_sold=%s low_stock=%s',
					              coalesce(users::text, 'NULL'), products, orders, revenue, items_sold, low_stock_products)
					  FROM api.stats`).Scan(&out)
			}))
			figures = append(figures, strings.SplitN(email, "@", 2)[0]+": "+out)
		}
		return strings.Join(figures, "; ")
	}

	steps := []struct {
		name   string
		user   string
		items  string
		wanted string
	}{
		{name: "seeded, no orders",
			wanted: "demo: users=NULL products=8 orders=0 revenue=0.00 items_sold=0 low_stock=3; " +
				"alice: users=NULL products=8 orders=0 revenue=0.00 items_sold=0 low_stock=3"},
		{name: "demo buys 2 mugs and a kettle (64.90)", user: "demo@example.com",
			items: pgtest.Items([2]int64{p["Espresso Mug"], 2}, [2]int64{p["Pour-Over Kettle"], 1}),
			wanted: "demo: users=NULL products=8 orders=1 revenue=64.90 items_sold=3 low_stock=3; " +
				"alice: users=NULL products=8 orders=0 revenue=0.00 items_sold=0 low_stock=3"},
		{name: "alice buys 4 bottles and the tamper (155.00): bottles fall below 5", user: "alice@example.com",
			items: pgtest.Items([2]int64{p["Cold Brew Bottle"], 4}, [2]int64{p["Limited Edition Tamper"], 1}),
			wanted: "demo: users=NULL products=8 orders=1 revenue=64.90 items_sold=3 low_stock=4; " +
				"alice: users=NULL products=8 orders=1 revenue=155.00 items_sold=5 low_stock=4"},
		{name: "a refused order counts for nothing", user: "bob@example.com",
			items: pgtest.Items([2]int64{p["Coffee Grinder"], 4}),
			wanted: "demo: users=NULL products=8 orders=1 revenue=64.90 items_sold=3 low_stock=4; " +
				"alice: users=NULL products=8 orders=1 revenue=155.00 items_sold=5 low_stock=4"},
	}
	for _, step := range steps {
		if step.items != "" {
			_, err := conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", u[step.user], step.items)
			if strings.HasPrefix(step.name, "a refused") {
				require.Error(t, err)
			} else {
				require.NoError(t, err, step.name)
			}
		}
		assert.Equal(t, step.wanted, stats(), step.name)
	}
	// One row, also for web_anon.
	var rows int
	require.NoError(t, pgtest.AsRole(ctx, conn, "web_anon", "", false, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM api.stats").Scan(&rows)
	}))
	assert.Equal(t, 1, rows)
}

func TestAuthLogin(t *testing.T) {
	_, conn := pgtest.Seeded(t)
	ctx := context.Background()
	users := pgtest.UserIDs(t, conn)

	login := func(email, password string) (string, error) {
		res, err := pgtest.Login(ctx, conn, email, password)
		if err != nil {
			return "", err
		}
		if res.Status != "" {
			return "", fmt.Errorf("HTTP %s %s: %s", res.Status, res.Code, res.Message)
		}
		return res.Token, nil
	}

	t.Run("right password", func(t *testing.T) {
		for _, tc := range []struct{ email, password, wantEmail string }{
			{"demo@example.com", "demo-password", "demo@example.com"},
			{"Demo@Example.COM", "demo-password", "demo@example.com"},
			{"alice@example.com", "alice-password", "alice@example.com"},
		} {
			token, err := login(tc.email, tc.password)
			require.NoError(t, err, tc.email)
			parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(pgtest.JWTSecret), nil },
				jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
			require.NoError(t, err, "the token must verify with the secret")
			require.True(t, parsed.Valid)
			claims := parsed.Claims.(jwt.MapClaims)
			assert.Equal(t, "web_user", claims["role"])
			assert.Equal(t, float64(users[tc.wantEmail]), claims["user_id"])
			assert.Equal(t, tc.wantEmail, claims["email"])
			exp, err := claims.GetExpirationTime()
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now().Add(time.Hour), exp.Time, 2*time.Minute)

			// Signed with the secret, not just well-formed: another key does not verify it.
			_, err = jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(pgtest.JWTSecret + "x"), nil },
				jwt.WithValidMethods([]string{"HS256"}))
			require.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct{ name, email, password string }{
			{"wrong password", "demo@example.com", "Demo-password"},
			{"empty password", "demo@example.com", ""},
			{"unknown email", "nobody@example.com", "demo-password"},
			{"password hash as password", "demo@example.com",
				pgtest.QueryString(t, conn, "SELECT password_hash FROM shop.users WHERE email = 'demo@example.com'")},
		} {
			res, err := pgtest.Login(ctx, conn, tc.email, tc.password)
			require.NoError(t, err, tc.name)
			assert.Equal(t, pgtest.LoginResult{Status: "401", Code: "28P01", Message: "invalid email or password"}, res, tc.name)
		}
	})

	t.Run("no signing key", func(t *testing.T) {
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, "DELETE FROM shop.jwt_keys")
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SET LOCAL ROLE web_anon")
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT api.login('demo@example.com', 'demo-password')")
		pgtest.RequireError(t, err, "55000", "no signing key in shop.jwt_keys")
	})
}

func TestAuthRolePrivileges(t *testing.T) {
	_, conn := pgtest.Seeded(t)
	ctx := context.Background()
	p := pgtest.ProductIDs(t, conn)
	u := pgtest.UserIDs(t, conn)
	demo, alice := u["demo@example.com"], u["alice@example.com"]
	// Alice has an order of her own, which demo must never see.
	_, err := conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", alice, pgtest.Items([2]int64{p["Paper Filters"], 1}))
	require.NoError(t, err)

	t.Run("grants are exactly these", func(t *testing.T) {
		for _, tc := range []struct {
			role, tables, functions, schemas string
		}{
			{"web_anon", "api.products:SELECT|api.stats:SELECT", "api.login", "api"},
			{"web_user", "api.orders:SELECT|api.products:SELECT|api.stats:SELECT|api.users:SELECT",
				"api.login|api.place_order", "api"},
			// NOINHERIT: without SET ROLE PostgREST's login role can do nothing.
			{"authenticator", "", "", ""},
			{"public", "", "", ""},
		} {
			// Every privilege type on every relation and function of schemas api and shop.
			assert.Equal(t, tc.tables, pgtest.QueryString(t, conn, `
				SELECT coalesce(string_agg(g, '|' ORDER BY g), '') FROM (
				  SELECT n.nspname || '.' || c.relname || ':' || pr.p AS g
				    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				   CROSS JOIN unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) AS pr(p)
				   WHERE n.nspname IN ('api', 'shop') AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f')
				     AND has_table_privilege($1, c.oid, pr.p)) AS grants`, tc.role), tc.role)
			assert.Equal(t, tc.functions, pgtest.QueryString(t, conn, `
				SELECT coalesce(string_agg(g, '|' ORDER BY g), '') FROM (
				  SELECT n.nspname || '.' || p.proname AS g
				    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				   WHERE n.nspname IN ('api', 'shop') AND has_function_privilege($1, p.oid, 'EXECUTE')) AS grants`, tc.role), tc.role)
			assert.Equal(t, tc.schemas, pgtest.QueryString(t, conn, `
				SELECT coalesce(string_agg(g, '|' ORDER BY g), '') FROM (
				  SELECT nspname || CASE WHEN has_schema_privilege($1, oid, 'CREATE') THEN '+create' ELSE '' END AS g
				    FROM pg_namespace
				   WHERE nspname IN ('api', 'shop') AND has_schema_privilege($1, oid, 'USAGE')) AS grants`, tc.role), tc.role)
			assert.Equal(t, "false", pgtest.QueryString(t, conn,
				"SELECT has_schema_privilege($1, 'public', 'CREATE')::text", tc.role), tc.role)
		}
	})

	t.Run("statements", func(t *testing.T) {
		order := pgtest.Items([2]int64{p["Espresso Mug"], 1})
		for _, tc := range []struct {
			name     string
			role     string
			claims   string
			sql      string
			sqlState string // "" when the statement must work
			message  string
		}{
			{"anon reads products", "web_anon", "", "SELECT count(*) FROM api.products", "", ""},
			{"anon reads stats", "web_anon", "", "SELECT * FROM api.stats", "", ""},
			{"anon cannot read users", "web_anon", "", "SELECT * FROM api.users", "42501", "permission denied for view users"},
			{"anon cannot read password hashes", "web_anon", "", "SELECT password_hash FROM shop.users", "42501", "permission denied for schema shop"},
			{"anon cannot read orders", "web_anon", "", "SELECT * FROM api.orders", "42501", "permission denied for view orders"},
			{"anon cannot insert orders", "web_anon", "", "INSERT INTO api.orders (user_id) VALUES (1)", "42501", "permission denied"},
			{"anon cannot insert into shop", "web_anon", "", "INSERT INTO shop.orders (user_id) VALUES (1)", "42501", "permission denied for schema shop"},
			{"anon cannot place orders", "web_anon", "", "SELECT api.place_order('" + order + "')", "42501", "permission denied for function place_order"},
			{"anon cannot call shop functions", "web_anon", "", "SELECT shop.place_order(1, '" + order + "')", "42501", "permission denied for schema shop"},
			{"anon cannot change products", "web_anon", "", "UPDATE api.products SET stock = 1000", "42501", "permission denied for view products"},
			{"user reads themself", "web_user", pgtest.Claims(demo), "SELECT count(*) FROM api.users", "", ""},
			{"user sees no password hash", "web_user", pgtest.Claims(demo), "SELECT password_hash FROM api.users", "42703", "password_hash"},
			{"user cannot read shop", "web_user", pgtest.Claims(demo), "SELECT * FROM shop.users", "42501", "permission denied for schema shop"},
			{"user cannot change products", "web_user", pgtest.Claims(demo), "UPDATE api.products SET price = 0", "42501", "permission denied for view products"},
			{"user cannot delete orders", "web_user", pgtest.Claims(demo), "DELETE FROM api.orders", "42501", "permission denied for view orders"},
			{"user cannot insert orders directly", "web_user", pgtest.Claims(demo), "INSERT INTO api.orders (user_id) VALUES (1)", "42501", "permission denied"},
			{"user without user_id cannot order", "web_user", `{"role": "web_user"}`, "SELECT api.place_order('" + order + "')", "42501", "login required"},
			{"user places an order", "web_user", pgtest.Claims(demo), "SELECT api.place_order('" + order + "')", "", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := pgtest.AsRole(ctx, conn, tc.role, tc.claims, false, func(tx pgx.Tx) error {
					rows, err := tx.Query(ctx, tc.sql)
					if err != nil {
						return err
					}
					rows.Close()
					return rows.Err()
				})
				if tc.sqlState == "" {
					require.NoError(t, err)
				} else {
					pgtest.RequireError(t, err, tc.sqlState, tc.message)
				}
			})
		}
	})

	t.Run("a user orders and sees only their own orders", func(t *testing.T) {
		var placed string
		require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", pgtest.Claims(demo), true, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT api.place_order($1::text::jsonb)::text",
				pgtest.Items([2]int64{p["Espresso Mug"], 2}, [2]int64{p["Single-Origin Beans"], 1})).Scan(&placed)
		}))
		var order struct {
			ID     int64   `json:"id"`
			UserID int64   `json:"user_id"`
			Status string  `json:"status"`
			Total  float64 `json:"total"`
			Items  []struct {
				ProductID   int64   `json:"product_id"`
				ProductName string  `json:"product_name"`
				Quantity    int     `json:"quantity"`
				UnitPrice   float64 `json:"unit_price"`
			} `json:"items"`
		}
		require.NoError(t, json.Unmarshal([]byte(placed), &order), placed)
		assert.Equal(t, demo, order.UserID)
		assert.Equal(t, "placed", order.Status)
		assert.InDelta(t, 39.75, order.Total, 1e-9)
		require.Len(t, order.Items, 2)
		assert.Equal(t, "Espresso Mug", order.Items[0].ProductName)
		assert.Equal(t, 2, order.Items[0].Quantity)
		assert.Equal(t, "Single-Origin Beans", order.Items[1].ProductName)
		assert.InDelta(t, 14.75, order.Items[1].UnitPrice, 1e-9)

		for _, tc := range []struct {
			name   string
			claims string
			want   string
		}{
			{"demo", pgtest.Claims(demo), fmt.Sprintf("%d:%d", order.ID, demo)},
			{"alice", pgtest.Claims(alice), fmt.Sprintf("1:%d", alice)},
			{"bob", pgtest.Claims(u["bob@example.com"]), ""},
			{"no user id", `{"role": "web_user"}`, ""},
		} {
			var got string
			require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", tc.claims, false, func(tx pgx.Tx) error {
				// Even asking for every user's orders returns only the caller's.
				return tx.QueryRow(ctx, `SELECT coalesce(string_agg(id || ':' || user_id, '|' ORDER BY id), '')
					FROM api.orders WHERE user_id > 0 OR true`).Scan(&got)
			}))
			assert.Equal(t, tc.want, got, tc.name)
		}
	})
}

// pgBackupRun runs the deployed backup.sh with sh and exactly the given environment.
func pgBackupRun(t *testing.T, script string, env []string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", script)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pgDumps lists the files of a backup folder.
func pgDumps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestBackupRoundTrip(t *testing.T) {
	s, conn := pgtest.Seeded(t)
	ctx := context.Background()
	p := pgtest.ProductIDs(t, conn)
	u := pgtest.UserIDs(t, conn)
	for _, o := range []struct {
		user  string
		items string
	}{
		{"demo@example.com", pgtest.Items([2]int64{p["Espresso Mug"], 2}, [2]int64{p["Pour-Over Kettle"], 1})},
		{"alice@example.com", pgtest.Items([2]int64{p["Limited Edition Tamper"], 1})},
	} {
		_, err := conn.Exec(ctx, "SELECT shop.place_order($1, $2::text::jsonb)", u[o.user], o.items)
		require.NoError(t, err)
	}

	script := filepath.Join(s.Dir, "backup.sh")
	require.NoError(t, os.WriteFile(script, []byte(assets.BackupScript()), 0o644))
	backupDir := filepath.Join(s.Dir, "backups")
	require.NoError(t, os.Mkdir(backupDir, 0o755))
	pwFile := filepath.Join(s.Dir, "database-password")
	require.NoError(t, os.WriteFile(pwFile, []byte(pgtest.BackupPassword+"\n"), 0o600))
	// Over TCP with a SCRAM password, as the CronJob reaches the database Service, as its own
	// role (not the superuser).
	env := []string{
		"PATH=" + s.Path,
		"PGHOST=127.0.0.1",
		fmt.Sprintf("PGPORT=%d", s.Port),
		"PGUSER=" + pgtest.BackupRole,
		"PGDATABASE=" + pgtest.Database,
		"PGPASSWORD_FILE=" + pwFile,
		"BACKUP_DIR=" + backupDir,
		"BACKUP_KEEP=1",
	}

	out, err := pgBackupRun(t, script, env)
	require.NoError(t, err, out)
	assert.NotContains(t, out, pgtest.BackupPassword)
	assert.Contains(t, out, "backup: wrote "+backupDir+"/"+pgtest.Database+"-")
	first := pgDumps(t, backupDir)
	require.Len(t, first, 1)
	assert.Regexp(t, `^ecommerce-\d{8}T\d{6}Z\.dump$`, first[0])

	// The next dump gets the next second's name; BACKUP_KEEP=1 leaves only it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	out, err = pgBackupRun(t, script, env)
	require.NoError(t, err, out)
	second := pgDumps(t, backupDir)
	require.Len(t, second, 1, "BACKUP_KEEP=1 keeps exactly one dump (no temporary files either)")
	assert.NotEqual(t, first[0], second[0])
	assert.Contains(t, out, "deleted old backup "+filepath.Join(backupDir, first[0]))
	assert.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 4, "one line per step:\n%s", out)

	// Restore with the documented command into a fresh, empty database, then once more over
	// the restored one (--clean): both give back exactly the same rows.
	s.Exec(t, "postgres", "CREATE DATABASE restored")
	dump := filepath.Join(backupDir, second[0])
	tables := []string{"shop.users", "shop.products", "shop.orders", "shop.order_items"}
	rowsOf := func(db string) map[string]string {
		c := s.Connect(t, db)
		got := map[string]string{}
		for _, table := range tables {
			got[table] = pgtest.QueryString(t, c, "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') FROM "+table+" t")
		}
		return got
	}
	want := rowsOf(pgtest.Database)
	require.Contains(t, want["shop.orders"], `"total":64.90`)
	for round := 1; round <= 2; round++ {
		cmd := exec.Command("sh", "-c", assets.RestoreCommand)
		cmd.Env = s.ClientEnv("restored", "DUMP="+dump)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "restore round %d:\n%s", round, out)
		assert.Equal(t, want, rowsOf("restored"), "round %d", round)
	}

	// The dump carries no signing key (backup.sh): the credentials Job, run after a restore
	// (README), writes the stack's key. Then the restored database works like the original:
	// grants, login, ordering, identities.
	restored := s.Connect(t, "restored")
	assert.Equal(t, "0", pgtest.QueryString(t, restored, "SELECT count(*)::text FROM shop.jwt_keys"))
	s.SyncCredentials(t, "restored", pgtest.AuthenticatorPassword, pgtest.JWTSecret)
	var products int
	require.NoError(t, pgtest.AsRole(ctx, restored, "web_anon", "", false, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM api.products").Scan(&products)
	}))
	assert.Equal(t, 8, products)
	require.NoError(t, pgtest.AsRole(ctx, restored, "web_anon", "", false, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT api.login('demo@example.com', 'demo-password')")
		return err
	}))
	var orderID int64
	require.NoError(t, restored.QueryRow(ctx, "SELECT id FROM shop.place_order($1, $2::text::jsonb)",
		u["bob@example.com"], pgtest.Items([2]int64{p["Paper Filters"], 1})).Scan(&orderID))
	assert.Greater(t, orderID, int64(2), "identity sequences continue after the restored rows")
}

func TestBackupFailsClearly(t *testing.T) {
	s := pgtest.StartLoaded(t, false)
	script := filepath.Join(s.Dir, "backup.sh")
	require.NoError(t, os.WriteFile(script, []byte(assets.BackupScript()), 0o644))
	pwFile := filepath.Join(s.Dir, "database-password")
	require.NoError(t, os.WriteFile(pwFile, []byte(pgtest.SuperuserPassword), 0o600))
	wrongPwFile := filepath.Join(s.Dir, "wrong-password")
	require.NoError(t, os.WriteFile(wrongPwFile, []byte("not-the-password"), 0o600))

	base := map[string]string{
		"PATH":            s.Path,
		"PGHOST":          "127.0.0.1",
		"PGPORT":          fmt.Sprint(s.Port),
		"PGUSER":          pgtest.Superuser,
		"PGDATABASE":      pgtest.Database,
		"PGPASSWORD_FILE": pwFile,
		"BACKUP_KEEP":     "3",
	}
	for _, tc := range []struct {
		name    string
		change  map[string]string // "" removes the variable
		message string
	}{
		{"variables missing", map[string]string{"PGHOST": "", "PGPASSWORD_FILE": "", "BACKUP_KEEP": ""},
			"missing required environment variable(s): PGHOST PGPASSWORD_FILE BACKUP_KEEP"},
		{"keep not a number", map[string]string{"BACKUP_KEEP": "seven"}, "BACKUP_KEEP must be a positive integer, got 'seven'"},
		{"keep zero", map[string]string{"BACKUP_KEEP": "0"}, "BACKUP_KEEP must be at least 1, got 0"},
		{"password file missing", map[string]string{"PGPASSWORD_FILE": "/nonexistent/password"},
			"cannot read PGPASSWORD_FILE /nonexistent/password"},
		{"backup dir missing", map[string]string{"BACKUP_DIR": "/nonexistent/backups"},
			"BACKUP_DIR /nonexistent/backups is not a writable directory"},
		{"wrong password", map[string]string{"PGPASSWORD_FILE": wrongPwFile}, "pg_dump of ecommerce failed; no backup written"},
		{"unknown database", map[string]string{"PGDATABASE": "nosuchdb"}, "pg_dump of nosuchdb failed; no backup written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backupDir := filepath.Join(t.TempDir(), "backups")
			require.NoError(t, os.Mkdir(backupDir, 0o755))
			vars := map[string]string{"BACKUP_DIR": backupDir}
			for k, v := range base {
				vars[k] = v
			}
			for k, v := range tc.change {
				vars[k] = v
			}
			var env []string
			for k, v := range vars {
				if v != "" {
					env = append(env, k+"="+v)
				}
			}
			out, err := pgBackupRun(t, script, env)
			require.Error(t, err, out)
			assert.Contains(t, out, "backup: ERROR: "+tc.message)
			assert.NotContains(t, out, pgtest.SuperuserPassword)
			assert.NotContains(t, out, "not-the-password")
			assert.Empty(t, pgDumps(t, backupDir), "a failed backup leaves no file behind")
		})
	}
}
