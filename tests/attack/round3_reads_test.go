package attack

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/nginxtest"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/postgrest"
)

// 10. Reads were unbounded: no db-max-rows, so an anonymous GET /api/products answered the
// whole catalogue (10,000 products: 17.6 ms of database CPU each), and offsets up to 9,999,999
// were let through (and any offset in a Range header). As deployed now: the backend's
// PostgREST answers at most apiMaxRows rows (100) to any read, nginx refuses offsets from
// 10000 on and drops the Range header, and the database reads one page of a 10,000-product
// catalogue where it read all of it.
func TestAttackRound3ReadsAreBounded(t *testing.T) {
	// The recorded backend: PostgREST's db-max-rows, in every stack.
	var maxRows int
	for _, stack := range []string{"dev", "prod"} {
		r := testkit.MustRun(t, stack, nil)
		env := testkit.EnvOf(testkit.TypedContainer(t, testkit.TypedPod(t, r.Object(t, testkit.Deployment, "backend")).Spec, "postgrest"))
		n, err := strconv.Atoi(env["PGRST_DB_MAX_ROWS"])
		require.NoError(t, err, "%s: the backend's PostgREST runs without db-max-rows (PGRST_DB_MAX_ROWS=%q)", stack, env["PGRST_DB_MAX_ROWS"])
		assert.Equal(t, 100, n, stack)
		maxRows = n
	}

	// The rendered nginx in front of a stand-in backend: the pages a client can ask for.
	ngx, up := nginxtest.BackedBy(t, nginxtest.EchoBackend, nil)
	for _, tc := range []struct {
		query  string
		header map[string]string
		status int
	}{
		{"order=id&limit=100&offset=9999", nil, http.StatusOK},
		{"order=id&limit=21&offset=0", nil, http.StatusOK},
		{"order=id&offset=10000", nil, http.StatusBadRequest},
		{"order=id&offset=9999999", nil, http.StatusBadRequest},
		{"order=id&limit=100&offset=00010000", nil, http.StatusBadRequest},
		{"order=id", map[string]string{"Range": "9999999-", "Range-Unit": "items"}, http.StatusOK},
	} {
		resp, _ := nginxtest.Do(t, "GET", ngx.Base+"/api/products?"+tc.query, tc.header, "")
		assert.Equal(t, tc.status, resp.StatusCode, "?%s %v", tc.query, tc.header)
	}
	reached := up.Take()
	require.Len(t, reached, 3, "only the bounded pages reached the backend")
	for _, r := range reached {
		assert.Empty(t, r.Header.Values("Range"), "a Range header (an offset nginx does not see) reached the backend")
		assert.Empty(t, r.Header.Values("Range-Unit"))
	}

	// The database: a 10,000-product catalogue read as PostgREST reads it, with db-max-rows
	// (LIMIT) and without (the whole list, as before).
	s, admin := pgtest.Seeded(t)
	ctx := context.Background()
	s.Exec(t, pgtest.Database, "INSERT INTO shop.products (name, price, stock) SELECT 'bulk product ' || i, 1.00, 10 FROM generate_series(1, 10000) i")
	total, err := strconv.Atoi(pgtest.QueryString(t, admin, "SELECT count(*)::text FROM api.products"))
	require.NoError(t, err)
	conn := s.Connect(t, pgtest.Database)
	setting, value, err := postgrest.RoleSetting(ctx, admin, "web_anon")
	require.NoError(t, err)
	read := func(r postgrest.Request) (int, time.Duration) {
		start := time.Now()
		body, err := postgrest.Run(ctx, conn, r, postgrest.AnonymousVars(setting, value, "/products"))
		took := time.Since(start)
		require.NoError(t, err)
		var rows []json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(body), &rows))
		return len(rows), took
	}
	page, pageTook := read(postgrest.GetProductsPage(maxRows, 0))
	deepest, _ := read(postgrest.GetProductsPage(maxRows, 9999))
	whole, wholeTook := read(postgrest.GetProducts())
	assert.Equal(t, maxRows, page, "a read answers one page")
	assert.Equal(t, min(maxRows, total-9999), deepest, "the deepest page nginx lets through")
	assert.Equal(t, total, whole, "without db-max-rows the read answers the whole catalogue")
	t.Logf("GET /products over %d products: one page of %d rows in %s, the whole list in %s",
		total, page, pageTook.Round(time.Microsecond), wholeTook.Round(time.Microsecond))
}
