package postgres

// The request texts of tests/testkit/postgrest (what make bench-orders measures) against the
// deployed SQL through PgBouncer as deployed: they do what PostgREST's requests do, and the
// API's checks hold for them.

import (
	"context"
	"encoding/json"
	"fmt"
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

func TestPostgRESTRequestTexts(t *testing.T) {
	s, admin := pgtest.Seeded(t)
	ctx := context.Background()
	bouncer := pgtest.StartPgBouncer(t, s, "pgbouncer", pgtest.AuthenticatorPassword, components.PgBouncerPool(config.Defaults().Backend))
	conn, err := pgx.Connect(ctx, bouncer.ConnString(pgtest.AuthenticatorPassword))
	require.NoError(t, err)
	defer conn.Close(ctx)
	userSetting, userValue, err := postgrest.RoleSetting(ctx, admin, "web_user")
	require.NoError(t, err)
	anonSetting, anonValue, err := postgrest.RoleSetting(ctx, admin, "web_anon")
	require.NoError(t, err)
	users, products := pgtest.UserIDs(t, admin), pgtest.ProductIDs(t, admin)
	exp := time.Now().Add(time.Hour).Unix()

	t.Run("POST /rpc/place_order places the customer's order", func(t *testing.T) {
		before := pgtest.Snapshot(t, admin)
		body := `{"items": [{"product_id": ` + fmt.Sprint(products["Paper Filters"]) + `, "quantity": 3}]}`
		out, err := postgrest.Run(ctx, conn, postgrest.PlaceOrder(),
			postgrest.OrderVars(userSetting, userValue, users["alice@example.com"], "alice@example.com", exp, body))
		require.NoError(t, err)
		var order struct {
			UserID int64   `json:"user_id"`
			Total  float64 `json:"total"`
			Items  []struct {
				ProductName string `json:"product_name"`
				Quantity    int
			}
		}
		require.NoError(t, json.Unmarshal([]byte(out), &order), out)
		assert.Equal(t, users["alice@example.com"], order.UserID)
		assert.InDelta(t, 14.97, order.Total, 0.001, "3 x 4.99")
		require.Len(t, order.Items, 1)
		assert.Equal(t, "Paper Filters", order.Items[0].ProductName)
		after := pgtest.Snapshot(t, admin)
		assert.Equal(t, before.Stock["Paper Filters"]-3, after.Stock["Paper Filters"])
		assert.Equal(t, before.Orders+1, after.Orders)
	})

	t.Run("the API's checks hold: stock, caps, and no order without a user", func(t *testing.T) {
		before := pgtest.Snapshot(t, admin)
		for _, tc := range []struct {
			vars      postgrest.Vars
			state, in string
		}{
			{postgrest.OrderVars(userSetting, userValue, users["bob@example.com"], "bob@example.com", exp,
				`{"items": [{"product_id": `+fmt.Sprint(products["Limited Edition Tamper"])+`, "quantity": 2}]}`), "P0001", "insufficient stock"},
			{postgrest.OrderVars(userSetting, userValue, users["bob@example.com"], "bob@example.com", exp,
				`{"items": [{"product_id": `+fmt.Sprint(products["Paper Filters"])+`, "quantity": 11}]}`), "22023", "at most 10"},
		} {
			_, err := postgrest.Run(ctx, conn, postgrest.PlaceOrder(), tc.vars)
			pgtest.RequireError(t, err, tc.state, tc.in)
		}
		anon := postgrest.AnonymousVars(anonSetting, anonValue, "/rpc/place_order")
		anon["body"] = `{"items": [{"product_id": 1, "quantity": 1}]}`
		_, err := postgrest.Run(ctx, conn, postgrest.PlaceOrder(), anon)
		pgtest.RequireError(t, err, "42501", "permission denied")
		assert.Equal(t, before, pgtest.Snapshot(t, admin), "a refused order changes nothing")
	})

	t.Run("GET /products returns the catalogue to a visitor", func(t *testing.T) {
		out, err := postgrest.Run(ctx, conn, postgrest.GetProducts(), postgrest.AnonymousVars(anonSetting, anonValue, "/products"))
		require.NoError(t, err)
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &rows))
		assert.Len(t, rows, len(products))
		assert.NotContains(t, rows[0], "created_at", "the view's columns only")
	})

	t.Run("pool.warm leaves nothing behind and only the authenticator may run it", func(t *testing.T) {
		before := pgtest.Snapshot(t, admin)
		_, err := conn.Exec(ctx, "SELECT pool.warm()")
		require.NoError(t, err, "as the authenticator, as PgBouncer's connect_query runs it")
		assert.Equal(t, before, pgtest.Snapshot(t, admin), "the warm-up order was rolled back")
		for _, role := range []string{"web_anon", "web_user"} {
			err := pgtest.AsRole(ctx, conn, role, pgtest.Claims(users["bob@example.com"]), false, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "SELECT pool.warm()")
				return err
			})
			pgtest.RequireError(t, err, "42501", "permission denied")
		}
	})
}
