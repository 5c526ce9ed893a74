package attack

// The second attack round (issue 18), each reproduced against what the program deploys. Each
// of these failed before the fix it names (the closing note lists how).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/envoytest"
	"ecommerce-platform/tests/testkit/nginxtest"
	"ecommerce-platform/tests/testkit/pgtest"
)

// evilRegex backtracks on back-references: PostgreSQL's regex engine spends seconds on it.
const evilRegex = `^(.*?)(.*?)(.*?)(.*?)(.*?)(.*?)(.*?)(.*?)(.*?)(.*?)(.*?)(.*?)\12\11\10\9\8\7\6\5\4\3\2\1$`

// asImpersonated runs fn as PostgREST 12 runs a request: the login role's 10 s limit, SET
// LOCAL ROLE, then the impersonated role's own settings (pg_db_role_setting) applied locally.
func asImpersonated(ctx context.Context, conn *pgx.Conn, role string, fn func(pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = '10s'"); err != nil { // authenticator's
		return err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT set_config(split_part(s, '=', 1), substr(s, strpos(s, '=') + 1), true)
		FROM pg_db_role_setting d, unnest(d.setconfig) s
		WHERE d.setrole = $1::regrole AND d.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))`, role); err != nil {
		return err
	}
	return fn(tx)
}

// 1. One anonymous request held a backend for the full 10 s: the regex operator is refused at
// the edge (an allow-list: encoded keys too), and a stranger's statement ends after 2 s.
func TestAttackCostlyQueryIsBounded(t *testing.T) {
	_, conn := pgtest.Seeded(t)
	ctx := context.Background()
	start := time.Now()
	err := asImpersonated(ctx, conn, "web_anon", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT count(*) FROM api.products WHERE name ~ $1", evilRegex)
		return err
	})
	took := time.Since(start)
	pgtest.RequireError(t, err, "57014", "statement timeout")
	assert.Less(t, took, 3*time.Second, "a stranger's statement is cut after 2 s, not the login role's 10 s")
	t.Logf("the regex request was cancelled after %.2f s", took.Seconds())

	ngx, up := nginxtest.BackedBy(t, nginxtest.EchoBackend, nil)
	for _, q := range []string{"name=match." + evilRegex, "%6e%61%6d%65=match.x", "name=imatch.x", "or=(name.match.x)",
		"name=fts.x", "id=eq.1&name=match.x"} {
		resp, _ := nginxtest.Do(t, "GET", ngx.Base+"/api/products?"+strings.ReplaceAll(q, `\`, `%5C`), nil, "")
		assert.Equalf(t, http.StatusBadRequest, resp.StatusCode, "?%s reaches the API", q)
	}
	for _, q := range []string{"order=id", "id=eq.1", "name=ilike.*Mug%20Large*&select=id,name,price", "limit=1", "id=not.in.(1,2)"} {
		resp, _ := nginxtest.Do(t, "GET", ngx.Base+"/api/products?"+q, nil, "")
		assert.Equalf(t, http.StatusOK, resp.StatusCode, "?%s is offered", q)
	}
	assert.Len(t, up.Take(), 5, "only the offered queries reached the backend")
}

// 3. Eleven wrong passwords sent together, then the right one: the lockout counts every one
// of them and the burst does not clear the lock it set, so the right password gets no token.
func TestAttackLockoutHoldsUnderConcurrency(t *testing.T) {
	s, _ := pgtest.Seeded(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	statuses := make(chan string, 11)
	for i := range 11 {
		conn := s.Connect(t, pgtest.Database)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := pgtest.Login(ctx, conn, "bob@example.com", fmt.Sprintf("wrong-guess-%d", i))
			if err == nil {
				statuses <- res.Status
			}
		}()
	}
	wg.Wait()
	close(statuses)
	res, err := pgtest.Login(ctx, s.Connect(t, pgtest.Database), "bob@example.com", "bob-password")
	require.NoError(t, err)
	assert.Empty(t, res.Token, "the right password after a burst of 11 wrong ones gets no token")
	assert.Equal(t, "429", res.Status)
	counts := map[string]int{}
	for st := range statuses {
		counts[st]++
	}
	assert.Equal(t, map[string]int{"401": 5, "429": 6}, counts, "exactly 5 failures counted, then the lock")
}

// 4. The login limit is neither shared by everyone behind an Ingress nor chosen by the client:
// an Ingress without trustedProxies, and a trustedProxies that trusts everyone, are refused.
func TestAttackLoginLimitKeyNotSharedOrChosen(t *testing.T) {
	for _, tc := range []struct {
		overrides map[string]string
		want      string
	}{
		{map[string]string{"ingressEnabled": "true", "ingressHost": "shop.example.com"},
			"trustedProxies: is empty with ingressEnabled"},
		{map[string]string{"trustedProxies": "0.0.0.0/0"}, `trustedProxies: "0.0.0.0/0" trusts every client`},
		{map[string]string{"trustedProxies": "10.0.0.0/8,::/0"}, `trustedProxies: "::/0" trusts every client`},
	} {
		r := testkit.RunProgram(t, "prod", tc.overrides)
		require.Error(t, r.Err)
		assert.Contains(t, r.Err.Error(), tc.want)
		assert.Empty(t, r.Kubernetes())
	}
}

// 5. Failed sign-ins no longer grow a table forever: an address longer than any e-mail is
// refused without a row (it used to end in a 500 naming the index), and failures nobody
// counts any more are forgotten.
func TestAttackFailedSignInsDoNotGrowATable(t *testing.T) {
	_, conn := pgtest.Seeded(t)
	ctx := context.Background()
	res, err := pgtest.Login(ctx, conn, strings.Repeat("x", 3000)+"@example.com", "whatever-password")
	require.NoError(t, err, "a 3 kB address is a 401, not a 500")
	assert.Equal(t, "401", res.Status)
	for i := range 40 {
		res, err := pgtest.Login(ctx, conn, fmt.Sprintf("stranger-%d@example.com", i), "whatever-password")
		require.NoError(t, err)
		require.Equal(t, "401", res.Status)
	}
	assert.Equal(t, "40", pgtest.QueryString(t, conn, "SELECT count(*)::text FROM shop.login_failures"))
	_, err = conn.Exec(ctx, "UPDATE shop.login_failures SET window_start = now() - interval '16 minutes'")
	require.NoError(t, err)
	for range 4 {
		_, err := pgtest.Login(ctx, conn, "alice@example.com", "alice-password")
		require.NoError(t, err)
	}
	assert.Equal(t, "0", pgtest.QueryString(t, conn, "SELECT count(*)::text FROM shop.login_failures"),
		"failures past their window are forgotten as sign-ins go on")
}

// 6. The kubelet's probes (/health, /live through Envoy) are outside the API's rate limit: load
// shedding never fails a probe.
func TestAttackProbesOutsideTheRateLimit(t *testing.T) {
	r := testkit.MustRun(t, "prod", map[string]string{"apiRateLimit": "100"})
	hcm := envoytest.ConnectionManager(t, envoytest.Decode(t, testkit.TypedConfigMap(t, r, "backend-config").Data["envoy.yaml"]))
	filter := envoytest.RateLimit(t, hcm.GetHttpFilters()[0].GetTypedConfig())
	assert.Nil(t, filter.GetTokenBucket(), "no bucket for every route")
	for _, route := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		limit := envoytest.RateLimit(t, route.GetTypedPerFilterConfig()["envoy.filters.http.local_ratelimit"])
		switch path := route.GetMatch().GetPath(); path {
		case "/health", "/live":
			assert.Nilf(t, limit, "%s is rate limited", path)
		default:
			require.NotNil(t, limit, "the API route is rate limited")
			assert.Equal(t, uint32(100), limit.GetTokenBucket().GetMaxTokens())
		}
	}
}

// 7. A compromised backend pod reaches less: the maintenance database, temporary files past a
// bound and the read replicas are out of its reach.
func TestAttackCompromisedBackendReachesLess(t *testing.T) {
	s, _ := pgtest.Seeded(t)
	ctx := context.Background()
	as := func(db string) (*pgx.Conn, error) {
		return pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=authenticator password=%s dbname=%s sslmode=disable",
			s.Port, pgtest.AuthenticatorPassword, db))
	}
	_, err := as("postgres")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "permission denied for database")
	conn, err := as(pgtest.Database)
	require.NoError(t, err)
	defer conn.Close(ctx)
	assert.Equal(t, "64MB", pgtest.QueryString(t, conn, "SHOW temp_file_limit"))
	_, err = conn.Exec(ctx, "SET temp_file_limit = -1")
	pgtest.RequireError(t, err, "42501", "permission denied to set parameter")

	r := testkit.MustRun(t, "prod", nil)
	policy := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "backend").Inputs)
	for _, rule := range policy.Spec.Egress {
		for _, peer := range rule.To {
			if peer.PodSelector != nil {
				assert.NotEqual(t, "replica", peer.PodSelector.MatchLabels["app.kubernetes.io/component"], "the backend reaches a replica")
			}
		}
	}
}

// 8. Envoy honours no client's x-envoy-* headers from a private address: the internal
// address list is set (empty means unset, and unset makes every private address internal)
// and holds no address a client has.
func TestAttackEnvoyTrustsNoPrivateAddress(t *testing.T) {
	r := testkit.MustRun(t, "dev", nil)
	hcm := envoytest.ConnectionManager(t, envoytest.Decode(t, testkit.TypedConfigMap(t, r, "backend-config").Data["envoy.yaml"]))
	ranges := hcm.GetInternalAddressConfig().GetCidrRanges()
	require.NotEmpty(t, ranges, "an empty list means unset: RFC1918 and RFC4193 addresses count as internal")
	for _, c := range ranges {
		_, n, err := net.ParseCIDR(fmt.Sprintf("%s/%d", c.GetAddressPrefix(), c.GetPrefixLen().GetValue()))
		require.NoError(t, err)
		for _, client := range []string{"10.0.0.1", "172.16.0.1", "192.168.1.1", "127.0.0.1", "100.64.0.1"} {
			assert.Falsef(t, n.Contains(net.ParseIP(client)), "%s counts as internal", client)
		}
	}
}

// 9. A retried POST never places an order twice: Envoy retries only what never reached
// PostgREST (a refused connection or stream), never after a reset or an answer.
func TestAttackRetriedPostIsNotRepeated(t *testing.T) {
	r := testkit.MustRun(t, "prod", nil)
	hcm := envoytest.ConnectionManager(t, envoytest.Decode(t, testkit.TypedConfigMap(t, r, "backend-config").Data["envoy.yaml"]))
	for _, route := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		on := route.GetRoute().GetRetryPolicy().GetRetryOn()
		for _, unsafe := range []string{"reset", "5xx", "gateway-error", "retriable-status-codes", "retriable-4xx"} {
			for _, cond := range strings.Split(on, ",") {
				assert.NotEqualf(t, unsafe, strings.TrimSpace(cond), "route %s retries on %s", route.GetMatch().String(), unsafe)
			}
		}
	}
}

// 11. A jwtSecret of 16 non-ASCII characters (48 bytes) is refused by config, counted in
// characters as the database counts them; and a secret the database refuses never reaches
// the credentials Job's output.
func TestAttackShortSecretRefusedAndNeverPrinted(t *testing.T) {
	short := strings.Repeat("é", 16)
	r := testkit.RunProgram(t, "dev", map[string]string{"jwtSecret": short})
	require.Error(t, r.Err)
	assert.Contains(t, r.Err.Error(), "jwtSecret: is 16 characters long; it must be at least 32")
	assert.NotContains(t, r.Err.Error(), short)
	assert.Empty(t, r.Kubernetes())

	s := pgtest.StartLoaded(t, false)
	out, err := s.TrySyncCredentials(t, pgtest.Database, pgtest.AuthenticatorPassword, short)
	require.Error(t, err, "the table's check refuses it")
	assert.NotContains(t, out, short, "the failing row, with the secret, is printed")
	assert.NotContains(t, s.Proc.Log(), short, "the failing row, with the secret, is in the server log")
}
