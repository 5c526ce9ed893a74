package postgres

// make bench-orders (skipped by make test for its minutes): the real pgbench against
// PostgreSQL 15 and PgBouncer started from the deployed postgresql.conf and pgbouncer.ini
// (fsync and synchronous commit as deployed), the deployed SQL and a generated catalogue.
// Each variant runs the platform's order path (PostgREST 12's request transaction for
// POST /rpc/place_order, the very text tests/testkit/postgrest holds) and a hand-written
// minimal order transaction side by side, and prints orders/s, p50/p95/p99 and their ratio.

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/config"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/postgrest"
)

// The generated catalogue: product 1 is the hot product of the hot variant, with stock for
// any run; every other product has stock for thousands of orders.
const (
	benchProducts  = 10000
	benchCustomers = 1000
	hotStock       = 1_000_000_000
	productStock   = 1_000_000
)

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s=%q", name, v)
	require.Positive(t, n, name)
	return n
}

// benchCatalogue loads the products and customers (one bcrypt hash computed once: the users'
// trigger keeps a value that already is a hash), and lets the authenticator run the baseline
// on the shop's tables: the same login role, pool and commit settings as the platform path.
func benchCatalogue(t testing.TB, s *pgtest.Server) {
	s.Exec(t, pgtest.Database, fmt.Sprintf(`INSERT INTO shop.products (name, description, price, stock)
		SELECT 'Product ' || g, 'Generated product number ' || g || ' of the benchmark catalogue.',
		       (1 + g %% 250) + 0.99, CASE WHEN g = 1 THEN %d ELSE %d END
		  FROM generate_series(1, %d) g`, hotStock, productStock, benchProducts))
	s.Exec(t, pgtest.Database, fmt.Sprintf(`INSERT INTO shop.users (email, name, password_hash)
		SELECT 'customer' || g || '@bench.example', 'Customer ' || g, h.hash
		  FROM generate_series(1, %d) g, (SELECT public.crypt('bench-customer-password', public.gen_salt('bf', 10)) AS hash) h`, benchCustomers))
	conn := s.Connect(t, pgtest.Database)
	require.Equal(t, fmt.Sprintf("1 %d 1 %d", benchProducts, benchCustomers), pgtest.QueryString(t, conn,
		"SELECT concat_ws(' ', (SELECT min(id) FROM shop.products), (SELECT max(id) FROM shop.products), (SELECT min(id) FROM shop.users), (SELECT max(id) FROM shop.users))"),
		"the scripts draw ids from 1..n")
	s.Exec(t, pgtest.Database, `GRANT USAGE ON SCHEMA shop TO authenticator;
		GRANT SELECT, INSERT, UPDATE ON shop.products, shop.orders, shop.order_items TO authenticator`)
	// The benchmark measures the order path, not the per-customer cap on unpaid units (each
	// of its customers places dozens of orders a run): a stack with orderMaxOpenUnits at its
	// maximum. The cap's check and lock still run on every order.
	s.Exec(t, pgtest.Database, "UPDATE shop.order_limits SET max_open_units = 1000000")
	s.Exec(t, pgtest.Database, "VACUUM ANALYZE")
	s.Exec(t, pgtest.Database, "CHECKPOINT")
}

// The per-transaction prelude of both order scripts: random customer, products and
// quantities, and (one round trip, the same in both scripts) the customer's claims, headers
// and the order's body from the templates of package postgrest. Random variant: the two lines
// are in disjoint halves of the catalogue; hot variant: every order has product 1.
func orderPrelude(hot bool) string {
	p1 := `\set p1 random(1, ` + strconv.Itoa(benchProducts/2) + ")"
	p2 := `\set p2 random(` + strconv.Itoa(benchProducts/2+1) + ", " + strconv.Itoa(benchProducts) + ")"
	if hot {
		p1 = `\set p1 1`
		p2 = `\set p2 random(2, ` + strconv.Itoa(benchProducts) + ")"
	}
	return strings.Join([]string{
		`\set uid random(1, ` + strconv.Itoa(benchCustomers) + ")",
		p1, p2, `\set q1 random(1, 5)`, `\set q2 random(1, 5)`,
		`SELECT r.body, r.claims, replace(replace(:headers_template, '@LENGTH@', octet_length(r.body)::text), '@CLAIMS64@', ` +
			`rtrim(translate(encode(convert_to(r.claims, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')) AS headers ` +
			`FROM (SELECT replace(replace(replace(replace(:body_template, '@P1@', :p1::text), '@Q1@', :q1::text), '@P2@', :p2::text), '@Q2@', :q2::text) AS body, ` +
			`replace(:claims_template, '@UID@', :uid::text) AS claims) r \gset`,
		"",
	}, "\n")
}

// baselineOrder is the hand-written minimal order: one statement decrements the stock of both
// products (only where there is enough), records the order with its total and its lines.
const baselineOrder = `BEGIN;
WITH p AS (UPDATE shop.products SET stock = stock - CASE id WHEN :p1::bigint THEN :q1::int ELSE :q2::int END WHERE id IN (:p1::bigint, :p2::bigint) AND stock >= CASE id WHEN :p1::bigint THEN :q1::int ELSE :q2::int END RETURNING id, price, CASE id WHEN :p1::bigint THEN :q1::int ELSE :q2::int END AS quantity), o AS (INSERT INTO shop.orders (user_id, total) SELECT :uid::bigint, sum(price * quantity) FROM p RETURNING id) INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price) SELECT o.id, p.id, p.quantity, p.price FROM o, p;
COMMIT;
`

// benchRun is one pgbench run's result.
type benchRun struct {
	Transactions int
	Seconds      float64
	Latencies    []float64          // ms, every transaction
	Commands     []string           // the script's SQL commands, in order (pgbench's first 60 characters)
	CommandMs    map[string]float64 // pgbench --report-per-command: mean ms per command, times Transactions
	Failed       int
	DBCPU        float64 // CPU seconds PostgreSQL's processes used
	BouncerCPU   float64 // CPU seconds PgBouncer used
}

// cpuSeconds is the CPU time a process and its children (live, and reaped) have used.
func cpuSeconds(pid int) float64 {
	const ticks = 100 // USER_HZ on Linux
	stat := func(path string) (ppid int, total float64, ok bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, 0, false
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from state (3rd) on
		if len(f) < 15 {
			return 0, 0, false
		}
		ppid, _ = strconv.Atoi(f[1])
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[i], 64)
			total += v
		}
		return ppid, total / ticks, true
	}
	_, total, _ := stat(fmt.Sprintf("/proc/%d/stat", pid))
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if ppid, t, ok := stat("/proc/" + e.Name() + "/stat"); ok && ppid == pid {
			total += t
		}
	}
	return total
}

func (r benchRun) rate() float64 { return float64(r.Transactions) / r.Seconds }

func (r benchRun) pct(p float64) float64 {
	if len(r.Latencies) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(r.Latencies)))) - 1
	return r.Latencies[max(i, 0)]
}

func (r *benchRun) add(o benchRun) {
	r.Transactions += o.Transactions
	r.Seconds += o.Seconds
	r.Latencies = append(r.Latencies, o.Latencies...)
	sort.Float64s(r.Latencies)
	if r.CommandMs == nil {
		r.CommandMs, r.Commands = map[string]float64{}, o.Commands
	}
	for c, ms := range o.CommandMs {
		r.CommandMs[c] += ms
	}
	r.Failed += o.Failed
	r.DBCPU += o.DBCPU
	r.BouncerCPU += o.BouncerCPU
}

// beforeCommit is the mean ms of the script's statements other than COMMIT (whose fsync, on a
// disk shared with other work, varies between runs more than the paths differ).
func (r benchRun) beforeCommit() float64 {
	total := 0.0
	for _, c := range r.Commands {
		if !strings.HasPrefix(c, "COMMIT") {
			total += r.CommandMs[c]
		}
	}
	return total / float64(r.Transactions)
}

// perCommand is the mean latency of each SQL command of the script, in ms.
func (r benchRun) perCommand() string {
	parts := make([]string, len(r.Commands))
	for i, c := range r.Commands {
		label := strings.TrimSuffix(strings.Fields(c)[0], ";")
		switch {
		case strings.HasPrefix(c, "SELECT r.body"):
			label = "prelude"
		case strings.HasPrefix(c, "select set_config"):
			label = "settings"
		case strings.HasPrefix(c, "WITH pgrst_source"):
			label = "call"
		case strings.HasPrefix(c, "WITH p AS"):
			label = "order statement"
		}
		parts[i] = fmt.Sprintf("%s %.3f", label, r.CommandMs[c]/float64(r.Transactions))
	}
	return strings.Join(parts, ", ")
}

// pgbencher runs the real pgbench through PgBouncer as the authenticator, the way the
// backend's PostgREST connects: extended protocol, unnamed statements (-M extended).
type pgbencher struct {
	bin, dir          string
	port              int
	dbPid, bouncerPid int
	vars              map[string]string // -D constants of every run
	server            *pgtest.Server
}

var (
	tpsLine     = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	failedLine  = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	commandLine = regexp.MustCompile(`(?m)^\s+([0-9.]+)\s+\d+\s+(.*)$`)
)

func (b *pgbencher) run(t *testing.T, name, script string, clients int, d time.Duration, extra map[string]string) benchRun {
	t.Helper()
	// Before each phase the customers' orders are paid, as a payment system would: the cap's
	// sum of a customer's unpaid units then reads what one phase left (a few orders each, as
	// under the deployed cap), not everything every earlier phase placed.
	b.server.Exec(t, pgtest.Database, "UPDATE shop.orders SET status = 'paid' WHERE status = 'placed'")
	b.server.Exec(t, pgtest.Database, "VACUUM ANALYZE shop.orders")
	path := filepath.Join(b.dir, name+".sql")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o644))
	prefix := filepath.Join(b.dir, "log-"+name)
	args := []string{"-n", "-M", "extended", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, runtime.NumCPU())),
		"-T", strconv.Itoa(int(d.Seconds())), "--report-per-command", "--log", "--log-prefix", prefix,
		"-h", "127.0.0.1", "-p", strconv.Itoa(b.port), "-U", "authenticator", "-f", path}
	keys := make([]string, 0, len(b.vars)+len(extra))
	all := map[string]string{}
	for k, v := range b.vars {
		all[k] = v
	}
	for k, v := range extra {
		all[k] = v
	}
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-D", k+"="+all[k])
	}
	args = append(args, pgtest.Database)
	cmd := exec.Command(b.bin, args...)
	cmd.Dir = b.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "PGPASSWORD=" + pgtest.AuthenticatorPassword, "PGSSLMODE=disable"}
	db, bouncer := cpuSeconds(b.dbPid), cpuSeconds(b.bouncerPid)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "pgbench %s:\n%s", name, out)
	db, bouncer = cpuSeconds(b.dbPid)-db, cpuSeconds(b.bouncerPid)-bouncer
	m := tpsLine.FindSubmatch(out)
	require.NotNil(t, m, "pgbench %s printed no transaction count:\n%s", name, out)
	r := benchRun{Seconds: d.Seconds(), CommandMs: map[string]float64{}, DBCPU: db, BouncerCPU: bouncer}
	if m := failedLine.FindSubmatch(out); m != nil {
		r.Failed, _ = strconv.Atoi(string(m[1]))
	}
	var means []float64
	if i := strings.Index(string(out), "statement latencies"); i >= 0 {
		for _, m := range commandLine.FindAllStringSubmatch(string(out[i:]), -1) {
			if strings.HasPrefix(m[2], `\`) {
				continue
			}
			ms, _ := strconv.ParseFloat(m[1], 64)
			r.Commands = append(r.Commands, m[2])
			means = append(means, ms)
		}
	}
	logs, err := filepath.Glob(prefix + ".*")
	require.NoError(t, err)
	for _, l := range logs {
		f, err := os.Open(l)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// client_id transaction_no time(us) script_no time_epoch time_us
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseFloat(fields[2], 64)
			if err != nil { // "failed" or "skipped"
				continue
			}
			r.Latencies = append(r.Latencies, us/1000)
		}
		f.Close()
		require.NoError(t, os.Remove(l))
	}
	r.Transactions = len(r.Latencies)
	sort.Float64s(r.Latencies)
	for i, c := range r.Commands {
		r.CommandMs[c] = means[i] * float64(r.Transactions)
	}
	return r
}

// side runs the platform path and the baseline twice each, in the order P B B P (each for
// half the duration), so that a drift of the machine during the run weighs on both alike.
func (b *pgbencher) side(t *testing.T, variant string, platform, baseline string, clients int, d time.Duration) (benchRun, benchRun) {
	var p, base benchRun
	half := max(d/2, time.Second)
	p.add(b.run(t, variant+"-platform-1", platform, clients, half, nil))
	base.add(b.run(t, variant+"-baseline-1", baseline, clients, half, nil))
	base.add(b.run(t, variant+"-baseline-2", baseline, clients, half, nil))
	p.add(b.run(t, variant+"-platform-2", platform, clients, half, nil))
	return p, base
}

func printSide(t *testing.T, variant string, clients int, p, base benchRun) float64 {
	ratio := p.rate() / base.rate()
	for _, row := range []struct {
		name string
		r    benchRun
	}{{"platform (PostgREST place_order)", p}, {"baseline (hand-written)", base}} {
		t.Logf("bench-orders: %-7s %2d clients  %-33s %7.0f orders/s  p50 %6.2f ms  p95 %6.2f ms  p99 %6.2f ms  (%d orders, %d failed)",
			variant, clients, row.name, row.r.rate(), row.r.pct(50), row.r.pct(95), row.r.pct(99), row.r.Transactions, row.r.Failed)
		t.Logf("bench-orders: %-7s            CPU per order: PostgreSQL %.3f ms (%.0f orders per database CPU-second), PgBouncer %.3f ms",
			"", 1000*row.r.DBCPU/float64(row.r.Transactions), float64(row.r.Transactions)/row.r.DBCPU, 1000*row.r.BouncerCPU/float64(row.r.Transactions))
		t.Logf("bench-orders: %-7s            mean ms per statement: %s", "", row.r.perCommand())
	}
	t.Logf("bench-orders: %-7s ratio platform/baseline %.2f (orders/s), p50 %.2f; before the commit (mean ms of the other statements, prelude included) %.2f vs %.2f: %.2f",
		variant, ratio, base.pct(50)/p.pct(50), p.beforeCommit(), base.beforeCommit(), base.beforeCommit()/p.beforeCommit())
	return ratio
}

func platform(hot bool) string { return orderPrelude(hot) + postgrest.PlaceOrder().Text }
func baseline(hot bool) string { return orderPrelude(hot) + baselineOrder }

// The frames alone, to tell PostgREST's share of the gap from the order path's: PostgREST's
// exact transaction around api.bench_frame (api.place_order's signature and attributes, a
// body that returns at once), and the baseline's transaction around SELECT 1.
const benchFrameFunction = `CREATE FUNCTION api.bench_frame(items jsonb) RETURNS json
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
AS $$ BEGIN RETURN '{}'::json; END $$;
GRANT EXECUTE ON FUNCTION api.bench_frame(jsonb) TO web_user`

func postgrestFrame() string {
	return orderPrelude(false) + strings.Replace(postgrest.PlaceOrder().Text, `"api"."place_order"(`, `"api"."bench_frame"(`, 1)
}
func minimalFrame() string { return orderPrelude(false) + "BEGIN;\nSELECT 1;\nCOMMIT;\n" }

// frameCeiling is the ratio a platform whose order work cost exactly the baseline's would
// reach: per order, the baseline's time plus what PostgREST's frame costs over the minimal
// one (time per order = 1 / orders per second of the run; at 16 clients on 2 cores, CPU).
func frameCeiling(base, frame, minimal benchRun) float64 {
	perOrder := func(r benchRun) float64 { return 1 / r.rate() }
	return perOrder(base) / (perOrder(base) + perOrder(frame) - perOrder(minimal))
}

func printFrames(t *testing.T, variant string, clients int, base, frame, minimal benchRun) {
	t.Logf("bench-orders: %-7s %2d clients  frames alone: PostgREST's %.0f/s (p50 %.2f ms, PostgreSQL CPU %.3f ms), the baseline's %.0f/s (p50 %.2f ms, %.3f ms): "+
		"PostgREST's frame costs %.3f ms more per order; with the baseline's order work inside it the ratio would be at most %.2f",
		variant, clients, frame.rate(), frame.pct(50), 1000*frame.DBCPU/float64(frame.Transactions), minimal.rate(), minimal.pct(50),
		1000*minimal.DBCPU/float64(minimal.Transactions), 1000*(1/frame.rate()-1/minimal.rate()), frameCeiling(base, frame, minimal))
}

// newBencher runs pgbench against bouncer with the constants of the order scripts.
func newBencher(t *testing.T, s *pgtest.Server, bouncer *pgtest.PgBouncer, bin string) *pgbencher {
	ctx := context.Background()
	userSetting, userValue, err := postgrest.RoleSetting(ctx, s.Connect(t, pgtest.Database), "web_user")
	require.NoError(t, err)
	// One definition of claims, token and headers (package postgrest), as templates the
	// prelude fills in per transaction.
	claimsTemplate := postgrest.Claims(0, "customer@UID@@bench.example", time.Now().Add(time.Hour).Unix())
	claimsTemplate = strings.Replace(claimsTemplate, `"user_id":0`, `"user_id":@UID@`, 1)
	token := postgrest.Token("{}")
	token = strings.Replace(token, strings.Split(token, ".")[1], "@CLAIMS64@", 1)
	b := &pgbencher{server: s, bin: bin, dir: t.TempDir(), port: bouncer.Port, dbPid: s.Proc.Cmd.Process.Pid, bouncerPid: bouncer.Cmd.Process.Pid, vars: map[string]string{
		"search_path": `"api", "public"`, "role_setting": userSetting, "role_setting_value": userValue, "role": "web_user",
		"method": "POST", "path": "/rpc/place_order", "cookies": "{}",
		"claims_template":  claimsTemplate,
		"headers_template": strings.Replace(postgrest.Headers("POST", token, 0), `"content-length":"0"`, `"content-length":"@LENGTH@"`, 1),
		"body_template":    `{"items": [{"product_id": @P1@, "quantity": @Q1@}, {"product_id": @P2@, "quantity": @Q2@}]}`,
	}}
	require.NoError(t, os.Chmod(b.dir, 0o755))
	return b
}

// benchProfile runs one client of each path on a server of its own with pg_stat_statements
// (track = all: the statements inside the functions too) and track_functions, and returns
// where the time went, per statement and per function.
func benchProfile(t *testing.T, bin string, d time.Duration) string {
	s := pgtest.StartDurable(t, pgtest.Durable{NoSeed: true, Args: []string{"-c", "shared_preload_libraries=pg_stat_statements",
		"-c", "pg_stat_statements.track=all", "-c", "pg_stat_statements.track_planning=on", "-c", "track_functions=all", "-c", "track_io_timing=on"}})
	benchCatalogue(t, s)
	s.Exec(t, pgtest.Database, "CREATE EXTENSION pg_stat_statements")
	bouncer := pgtest.StartPgBouncer(t, s, "pgbouncer-profile", pgtest.AuthenticatorPassword, components.PgBouncerPool(config.Defaults().Backend))
	b := newBencher(t, s, bouncer, bin)
	b.run(t, "profile-warmup", platform(false), 1, 2*time.Second, nil)
	b.run(t, "profile-warmup-baseline", baseline(false), 1, 2*time.Second, nil)
	s.Exec(t, pgtest.Database, "SELECT pg_stat_statements_reset(), pg_stat_reset()")
	p := b.run(t, "profile-platform", platform(false), 1, d, nil)
	base := b.run(t, "profile-baseline", baseline(false), 1, d, nil)
	var out strings.Builder
	fmt.Fprintf(&out, "one client, %d platform orders then %d baseline orders; mean ms per call (top level and nested) executing and planning, WAL bytes per call:\n", p.Transactions, base.Transactions)
	rows, err := s.Connect(t, pgtest.Database).Query(context.Background(), `
		SELECT calls, round(mean_exec_time::numeric, 3), round((total_plan_time / calls)::numeric, 3), round((wal_bytes / greatest(calls, 1))::numeric),
		       left(regexp_replace(query, '\s+', ' ', 'g'), 110)
		  FROM pg_stat_statements
		 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND calls >= $1
		 ORDER BY total_exec_time DESC LIMIT 25`, p.Transactions/2)
	require.NoError(t, err)
	fmt.Fprintf(&out, "%8s %9s %9s %7s  %s\n", "calls", "exec ms", "plan ms", "WAL B", "statement")
	for rows.Next() {
		var calls int64
		var exec, plan, wal float64
		var q string
		require.NoError(t, rows.Scan(&calls, &exec, &plan, &wal, &q))
		fmt.Fprintf(&out, "%8d %9.3f %9.3f %7.0f  %s\n", calls, exec, plan, wal, q)
	}
	require.NoError(t, rows.Err())
	rows, err = s.Connect(t, pgtest.Database).Query(context.Background(), `
		SELECT schemaname || '.' || funcname, calls, round((total_time / calls)::numeric, 3), round((self_time / calls)::numeric, 3)
		  FROM pg_stat_user_functions WHERE calls > 0 ORDER BY total_time DESC`)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		var calls int64
		var total, self float64
		require.NoError(t, rows.Scan(&name, &calls, &total, &self))
		fmt.Fprintf(&out, "function %s: %d calls, %.3f ms each (%.3f ms in its own body)\n", name, calls, total, self)
	}
	require.NoError(t, rows.Err())
	return out.String()
}

func TestBenchOrders(t *testing.T) {
	if os.Getenv("ECOMMERCE_BENCH_ORDERS") == "" {
		t.Skip("run by make bench-orders (minutes of load)")
	}
	clients := envInt(t, "ECOMMERCE_BENCH_CLIENTS", 16)
	d := time.Duration(envInt(t, "ECOMMERCE_BENCH_SECONDS", 20)) * time.Second
	bin := testkit.RequireEngine(t, "pgbench")
	ctx := context.Background()

	s := pgtest.StartDurable(t, pgtest.Durable{NoSeed: true})
	benchCatalogue(t, s)
	pool := components.PgBouncerPool(config.Defaults().Backend)
	bouncer := pgtest.StartPgBouncer(t, s, "pgbouncer", pgtest.AuthenticatorPassword, pool)
	t.Logf("bench-orders: %d cores, PostgreSQL 15 and PgBouncer on the deployed files (fsync on, synchronous_commit %s for the API's role), "+
		"%d products, %d customers, pool_mode transaction, default_pool_size %d, min_pool_size %d; %d clients, %s per path and variant",
		runtime.NumCPU(), pgtest.QueryString(t, s.Connect(t, pgtest.Database),
			"SELECT coalesce((SELECT split_part(c, '=', 2) FROM pg_db_role_setting, unnest(setconfig) c WHERE setrole = 'authenticator'::regrole AND c LIKE 'synchronous_commit=%'), current_setting('synchronous_commit'))"),
		benchProducts, benchCustomers, pool.DefaultPoolSize, pool.MinPoolSize, clients, d)

	// The first request on a fresh server connection, before anything warmed the pool.
	first := firstRequests(t, s, 3)
	firstMs := first.pooled.Seconds() * 1000

	b := newBencher(t, s, bouncer, bin)
	admin := s.Connect(t, pgtest.Database)
	anonSetting, anonValue, err := postgrest.RoleSetting(ctx, admin, "web_anon")
	require.NoError(t, err)

	// Warm-up: every pool connection runs both paths once or more.
	b.run(t, "warmup-platform", platform(false), clients, 3*time.Second, nil)
	b.run(t, "warmup-baseline", baseline(false), clients, 3*time.Second, nil)

	randP, randB := b.side(t, "random", platform(false), baseline(false), clients, d)
	hotP, hotB := b.side(t, "hot", platform(true), baseline(true), clients, d)
	oneP, oneB := b.side(t, "single", platform(false), baseline(false), 1, d)
	s.Exec(t, pgtest.Database, benchFrameFunction)
	frames := map[int][2]benchRun{}
	for _, n := range []int{clients, 1} {
		frames[n] = [2]benchRun{b.run(t, fmt.Sprintf("frame-postgrest-%d", n), postgrestFrame(), n, d/2, nil),
			b.run(t, fmt.Sprintf("frame-minimal-%d", n), minimalFrame(), n, d/2, nil)}
	}
	read := b.run(t, "read", postgrest.GetProducts().Text, clients, d, map[string]string{
		"role_setting": anonSetting, "role_setting_value": anonValue, "role": "web_anon",
		"claims": `{"role":"web_anon"}`, "method": "GET", "path": "/products", "headers": postgrest.Headers("GET", "", 0)})

	if os.Getenv("ECOMMERCE_BENCH_PROFILE") != "" {
		t.Logf("bench-orders: profile (pg_stat_statements, track = all):\n%s", benchProfile(t, bin, d/2))
	}
	t.Logf("bench-orders: first request on a fresh server connection: %s", first)
	r := printSide(t, "random", clients, randP, randB)
	h := printSide(t, "hot", clients, hotP, hotB)
	one := printSide(t, "single", 1, oneP, oneB)
	printFrames(t, "random", clients, randB, frames[clients][0], frames[clients][1])
	printFrames(t, "single", 1, oneB, frames[1][0], frames[1][1])
	t.Logf("bench-orders: read    %2d clients  GET /products?order=id (%d products as JSON) %7.1f requests/s  p50 %6.2f ms  p95 %6.2f ms  p99 %6.2f ms; PostgreSQL CPU %.2f ms per request",
		clients, benchProducts, read.rate(), read.pct(50), read.pct(95), read.pct(99), 1000*read.DBCPU/float64(read.Transactions))
	t.Logf("bench-orders: random ratio %.2f, hot ratio %.2f, single-client ratio %.2f, first request %.1f ms", r, h, one, firstMs)
}
