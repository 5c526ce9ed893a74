package postgres

// BenchmarkProductsPage: one anonymous GET /api/products?order=id as PostgREST 12 sends it
// (tests/testkit/postgrest's text, through PgBouncer as the authenticator, one round trip a
// statement) over make bench-orders' 10,000-product catalogue on the deployed files: one page
// as deployed (LIMIT db-max-rows, the recorded prod backend's PGRST_DB_MAX_ROWS), a keyset page
// and the deepest offset page nginx lets through (both the last apiMaxRows products), and the
// whole catalogue (no db-max-rows, as before issue 27's finding 10). ns/op is the request as
// the pool's client sees it; db-cpu-ms/op is PostgreSQL's CPU per request (bench-orders'
// cpuSeconds over the server's processes). Run by make bench-products.

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/config"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/postgrest"
)

func BenchmarkProductsPage(b *testing.B) {
	r := testkit.MustRun(b, "prod", nil)
	env := testkit.EnvOf(testkit.TypedContainer(b, testkit.TypedPod(b, r.Object(b, testkit.Deployment, "backend")).Spec, "postgrest"))
	maxRows, err := strconv.Atoi(env["PGRST_DB_MAX_ROWS"])
	require.NoError(b, err, "the prod backend's PostgREST runs without db-max-rows (PGRST_DB_MAX_ROWS=%q)", env["PGRST_DB_MAX_ROWS"])

	s := pgtest.StartDurable(b, pgtest.Durable{NoSeed: true})
	benchCatalogue(b, s)
	bouncer := pgtest.StartPgBouncer(b, s, "pgbouncer", pgtest.AuthenticatorPassword, components.PgBouncerPool(config.Defaults().Backend))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, bouncer.ConnString(pgtest.AuthenticatorPassword))
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(ctx) })
	setting, value, err := postgrest.RoleSetting(ctx, s.Connect(b, pgtest.Database), "web_anon")
	require.NoError(b, err)
	vars := postgrest.AnonymousVars(setting, value, "/products")
	last := benchProducts - maxRows // ids run 1..benchProducts (benchCatalogue checks)

	for _, tc := range []struct {
		name string
		req  postgrest.Request
		rows int
	}{
		{"page", postgrest.GetProductsPage(maxRows, 0), maxRows},
		{"keyset", postgrest.GetProductsAfter(last, maxRows), maxRows},
		{"offset" + strconv.Itoa(last), postgrest.GetProductsPage(maxRows, last), maxRows},
		{"whole", postgrest.GetProducts(), benchProducts},
	} {
		b.Run(tc.name, func(b *testing.B) {
			body, err := postgrest.Run(ctx, conn, tc.req, vars)
			require.NoError(b, err, tc.req.Name)
			var rows []json.RawMessage
			require.NoError(b, json.Unmarshal([]byte(body), &rows))
			require.Len(b, rows, tc.rows, tc.req.Name)
			cpu := cpuSeconds(s.Proc.Cmd.Process.Pid)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := postgrest.Run(ctx, conn, tc.req, vars); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(1000*(cpuSeconds(s.Proc.Cmd.Process.Pid)-cpu)/float64(b.N), "db-cpu-ms/op")
			b.ReportMetric(float64(len(body)), "body-B/op")
			b.ReportMetric(float64(len(rows)), "rows/op")
		})
	}
}
