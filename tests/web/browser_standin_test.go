package web

import (
	"context"
	"encoding/json"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit/pgtest"
)

// The browser test's stand-in for PostgREST must not drift from the API the SQL defines: every
// path it serves is a view or function of schema api (as the migrations leave it), and the rows it returns
// have exactly the columns the real views have in PostgreSQL 15.
func TestBrowserStandInMatchesTheAPISQL(t *testing.T) {
	// The API as the migrations leave it: schema api's views and functions.
	_, conn := pgtest.Seeded(t)
	api := map[string]bool{}
	rows, err := conn.Query(context.Background(), `
		SELECT 'GET /' || viewname FROM pg_views WHERE schemaname = 'api'
		UNION ALL
		SELECT 'POST /rpc/' || proname FROM pg_proc WHERE pronamespace = 'api'::regnamespace`)
	require.NoError(t, err)
	routes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, route := range routes {
		api[route] = true
	}
	for _, route := range []string{"GET /products", "GET /stats", "GET /orders", "POST /rpc/login", "POST /rpc/place_order"} {
		assert.Truef(t, api[route], "the stand-in serves %s, which the migrated api schema does not define", route)
	}

	columns := func(view string) []string {
		rows, err := conn.Query(context.Background(),
			"SELECT column_name FROM information_schema.columns WHERE table_schema = 'api' AND table_name = $1", view)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var c string
			require.NoError(t, rows.Scan(&c))
			out = append(out, c)
		}
		sort.Strings(out)
		return out
	}
	keys := func(v any) []string {
		js, err := json.Marshal(v)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(js, &m))
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	assert.Equal(t, columns("products"), keys(browserProduct{}), "api.products")
	assert.Equal(t, columns("orders"), keys(browserOrder{}), "api.orders")
	assert.Equal(t, columns("stats"), keys((&browserPostgREST{}).stats(1)), "api.stats")
}
