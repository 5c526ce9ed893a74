package web

import (
	"context"
	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit/pgtest"
	"encoding/json"
	"regexp"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The browser test's stand-in for PostgREST must not drift from the API the SQL defines: every
// path it serves is a view or function of schema api (02-api.sql), and the rows it returns
// have exactly the columns the real views have in PostgreSQL 15.
func TestBrowserStandInMatchesTheAPISQL(t *testing.T) {
	sql := assets.File("sql/02-api.sql")
	api := map[string]bool{}
	for _, m := range regexp.MustCompile(`CREATE VIEW api\.(\w+)`).FindAllStringSubmatch(sql, -1) {
		api["GET /"+m[1]] = true
	}
	for _, m := range regexp.MustCompile(`CREATE FUNCTION api\.(\w+)`).FindAllStringSubmatch(sql, -1) {
		api["POST /rpc/"+m[1]] = true
	}
	for _, route := range []string{"GET /products", "GET /stats", "GET /orders", "POST /rpc/login", "POST /rpc/place_order"} {
		assert.Truef(t, api[route], "the stand-in serves %s, which 02-api.sql does not define", route)
	}

	_, conn := pgtest.Seeded(t)
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
	assert.Equal(t, columns("stats"), keys((&browserPostgREST{}).stats(true)), "api.stats")
}
