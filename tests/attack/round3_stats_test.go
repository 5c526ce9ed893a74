package attack

import (
	"context"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit/pgtest"
)

// 8. Every signed-in customer read the shop's users, orders, revenue and items sold from
// /api/stats, and followed other customers' orders by the difference: alice's 3 units for
// 14.97 showed in demo's view as orders 1 -> 2, revenue 12.50 -> 27.47. Now a customer's
// /api/stats holds their own orders, spending and units (users: null), through PgBouncer as
// PostgREST reads it: another customer's order moves nothing in it. A visitor still gets nulls.
func TestAttackRound3StatsShowOnlyTheCustomersOwnFigures(t *testing.T) {
	api := startRound3API(t)
	ctx := context.Background()
	u, p := pgtest.UserIDs(t, api.admin), pgtest.ProductIDs(t, api.admin)
	items := func(lines ...[2]int64) string { return `{"items": ` + pgtest.Items(lines...) + `}` }
	stats := func(role, claims string) string {
		var row string
		require.NoError(t, pgtest.AsRole(ctx, api.conn, role, claims, false, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT row_to_json(s)::text FROM api.stats s").Scan(&row)
		}))
		return row
	}
	demoView := func() string { return stats("web_user", pgtest.Claims(u["demo@example.com"])) }

	_, status, msg := api.order(t, u["demo@example.com"], "demo@example.com", items([2]int64{p["Espresso Mug"], 1}), nil)
	require.Equal(t, http.StatusOK, status, msg)
	own := `{"users": null, "products": 8, "orders": 1, "revenue": 12.50, "items_sold": 1, "low_stock_products": 3}`
	assert.JSONEq(t, own, demoView(), "demo's figures are demo's own")

	// The finding's observation: alice orders 3 units for 14.97; demo's view does not move.
	_, status, msg = api.order(t, u["alice@example.com"], "alice@example.com", items([2]int64{p["Paper Filters"], 3}), nil)
	require.Equal(t, http.StatusOK, status, msg)
	assert.JSONEq(t, own, demoView(), "another customer's order shows in demo's figures")
	assert.JSONEq(t, `{"users": null, "products": 8, "orders": 1, "revenue": 14.97, "items_sold": 3, "low_stock_products": 3}`,
		stats("web_user", pgtest.Claims(u["alice@example.com"])), "alice's figures are alice's own")
	assert.JSONEq(t, `{"users": null, "products": 8, "orders": 0, "revenue": 0.00, "items_sold": 0, "low_stock_products": 3}`,
		stats("web_user", pgtest.Claims(u["bob@example.com"])), "bob has ordered nothing")
	assert.JSONEq(t, `{"users": null, "products": 8, "orders": null, "revenue": null, "items_sold": null, "low_stock_products": 3}`,
		stats("web_anon", ""), "a visitor gets the catalogue's figures only")

	// No API role reads the shop-wide figures: the shop's tables are the owner's.
	for _, role := range []string{"web_user", "web_anon", "authenticator"} {
		err := pgtest.AsRole(ctx, api.conn, role, pgtest.Claims(u["demo@example.com"]), false, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT sum(total) FROM shop.orders")
			return err
		})
		pgtest.RequireError(t, err, "42501", "permission denied for schema shop")
	}
}
