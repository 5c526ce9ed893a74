package postgres

// Engine test of the connection-pool ambassador: the rendered pgbouncer.ini run by a real
// PgBouncer in front of a real PostgreSQL 15, used the way PostgREST uses it (transaction
// pooling, no prepared statements, SET LOCAL ROLE per request).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit/pgtest"
)

func TestPgBouncerPooledApiAccess(t *testing.T) {
	s := pgtest.StartLoaded(t, true)
	sizes := assets.PgBouncerSettings{DefaultPoolSize: 2, MinPoolSize: 1, ReservePoolSize: 1, MaxClientConn: 50, MaxDBConns: 3}
	proc := pgtest.StartPgBouncer(t, s, "pgbouncer", pgtest.AuthenticatorPassword, sizes)
	ini, connString := proc.Ini, proc.ConnString
	ctx := context.Background()
	connect := func(t *testing.T) *pgx.Conn {
		conn, err := pgx.Connect(ctx, connString(pgtest.AuthenticatorPassword))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close(ctx) })
		return conn
	}

	t.Run("the ini has no setting PgBouncer rejects", func(t *testing.T) {
		log := strings.ToLower(proc.Log())
		assert.NotContains(t, log, "unknown parameter")
		assert.NotContains(t, log, "warning")
		assert.Contains(t, ini, "pool_mode = transaction")
		assert.Contains(t, ini, fmt.Sprintf("%s = host=127.0.0.1 port=%d dbname=%s", pgtest.Database, s.Port, pgtest.Database))
		assert.Contains(t, ini, "\npidfile =\n", "no pidfile: a restarted PgBouncer must not find its own")
	})

	t.Run("anonymous request counts the seeded products", func(t *testing.T) {
		conn := connect(t)
		var role string
		var count int
		// Exactly the transaction the brief specifies, in the simple query protocol.
		_, err := conn.Exec(ctx, "BEGIN")
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "SET LOCAL ROLE web_anon")
		require.NoError(t, err)
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_user, count(*) FROM api.products").Scan(&role, &count))
		_, err = conn.Exec(ctx, "COMMIT")
		require.NoError(t, err)
		assert.Equal(t, "web_anon", role)
		assert.Equal(t, len(pgSeedProducts), count)
		// The role ends with the transaction: the next one, on whatever server connection the
		// pool gives, is authenticator again, who (NOINHERIT) can read nothing by itself.
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&role))
		assert.Equal(t, "authenticator", role)
		_, err = conn.Exec(ctx, "SELECT count(*) FROM api.products")
		pgtest.RequireError(t, err, "42501", "permission denied")
	})

	t.Run("login, order and own orders through the pool", func(t *testing.T) {
		conn := connect(t)
		var body string
		require.NoError(t, pgtest.AsRole(ctx, conn, "web_anon", "", true, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT api.login($1, $2)::text", "bob@example.com", "bob-password").Scan(&body)
		}))
		var resp struct {
			Token string `json:"token"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &resp))
		token, err := jwt.Parse(resp.Token, func(*jwt.Token) (any, error) { return []byte(pgtest.JWTSecret), nil },
			jwt.WithValidMethods([]string{"HS256"}))
		require.NoError(t, err)
		// PostgREST passes the verified claims on as request.jwt.claims.
		claims, err := json.Marshal(token.Claims)
		require.NoError(t, err)

		mug := pgtest.ProductIDs(t, s.Connect(t, pgtest.Database))["Espresso Mug"]
		var order string
		require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", string(claims), true, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT api.place_order($1::text::jsonb)::text", pgtest.Items([2]int64{mug, 1})).Scan(&order)
		}))
		assert.Contains(t, order, `"product_name" : "Espresso Mug"`)
		var mine int
		require.NoError(t, pgtest.AsRole(ctx, conn, "web_user", string(claims), false, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM api.orders").Scan(&mine)
		}))
		assert.Equal(t, 1, mine)
	})

	t.Run("many clients share the few server connections", func(t *testing.T) {
		const clients = 12
		conns := make([]*pgx.Conn, clients)
		for i := range conns {
			conns[i] = connect(t)
		}
		errs := make([]error, clients)
		counts := make([]int, clients)
		var wg sync.WaitGroup
		for i, conn := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = pgtest.AsRole(ctx, conn, "web_anon", "", true, func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, "SELECT count(*) FROM api.products, pg_sleep(0.05)").Scan(&counts[i])
				})
			}()
		}
		wg.Wait()
		for i := range conns {
			require.NoError(t, errs[i], "client %d", i)
			assert.Equal(t, len(pgSeedProducts), counts[i], "client %d", i)
		}
		direct := s.Connect(t, pgtest.Database)
		var serverConns int
		require.NoError(t, direct.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE usename = 'authenticator'").Scan(&serverConns))
		assert.LessOrEqual(t, serverConns, sizes.MaxDBConns, "max_db_connections caps the pool")
		assert.GreaterOrEqual(t, serverConns, 1)
	})

	t.Run("a wrong password is refused", func(t *testing.T) {
		_, err := pgx.Connect(ctx, connString("not-the-password"))
		require.Error(t, err)
		// PgBouncer itself checks the SCRAM proof against the auth file.
		assert.Contains(t, err.Error(), "authentication failed")
	})
}
