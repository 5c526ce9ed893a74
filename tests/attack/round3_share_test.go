package attack

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// scarceProducts are the five products of the dev seed with the least stock (28 units).
var scarceProducts = []string{"Limited Edition Tamper", "Coffee Grinder", "Barista Apron", "Cold Brew Bottle", "Pour-Over Kettle"}

// mostOf is what a customer holding held units of a product may still order under a share of
// sharePercent: what they hold with the order is at most sharePercent of the units in stock
// and theirs, at least one (migration 000005's bound, written out to find its edge).
func mostOf(stock, held, sharePercent int) int {
	return max(max(1, (stock+held)*sharePercent/100)-held, 0)
}

// 5. The unpaid cap bounded a customer's units in all (40), not per product: one account took
// all 28 units of the five scarcest dev products in two orders and took them again as soon as
// the release job returned them; the other customer bought 0 of the 5, before and after. Now
// a customer holds unpaid at most orderMaxProductSharePercent (50) of a product's units in
// stock and their own (at least one), written by the credentials Job as deployed and checked
// in the order's own UPDATE: the attacker's two orders are refused, the most they can take
// leaves at least as many units as they hold, and another customer buys each scarce product
// that has a second unit, before and after the release.
func TestAttackRound3ScarceProductsStayForOthers(t *testing.T) {
	// The bound is a setting of the stack, which the credentials Job writes: its recorded env.
	var share string
	for _, stack := range []string{"dev", "prod"} {
		r := testkit.MustRun(t, stack, nil)
		env := testkit.EnvOf(testkit.TypedContainer(t, testkit.TypedPod(t, r.Object(t, testkit.Job, "database-credentials")).Spec, "credentials-sync"))
		require.Equal(t, "50", env["ORDER_MAX_PRODUCT_SHARE_PERCENT"], "%s: the credentials Job writes no per-product bound", stack)
		share = env["ORDER_MAX_PRODUCT_SHARE_PERCENT"]
	}
	api := startRound3API(t)
	out, err := api.s.TrySyncCredentialsEnv(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, "ORDER_MAX_PRODUCT_SHARE_PERCENT="+share)
	require.NoError(t, err, out)
	percent, err := strconv.Atoi(share)
	require.NoError(t, err)

	u, p := pgtest.UserIDs(t, api.admin), pgtest.ProductIDs(t, api.admin)
	demo := u["demo@example.com"]
	items := func(lines ...[2]int64) string { return `{"items": ` + pgtest.Items(lines...) + `}` }
	stock := func(name string) int {
		n, err := strconv.Atoi(pgtest.QueryString(t, api.admin, "SELECT stock::text FROM shop.products WHERE name = $1", name))
		require.NoError(t, err)
		return n
	}
	held := func(user int64, name string) int {
		n, err := strconv.Atoi(pgtest.QueryString(t, api.admin, `SELECT coalesce(sum(i.quantity), 0)::text
			FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.id JOIN shop.products p ON p.id = i.product_id
			WHERE o.user_id = $1 AND o.status = 'placed' AND p.name = $2`, user, name))
		require.NoError(t, err)
		return n
	}

	// The finding's attack: every unit of the five, in two orders of at most 20 units.
	before := pgtest.Snapshot(t, api.admin)
	_, status, msg := api.order(t, demo, "demo@example.com", items([2]int64{p["Pour-Over Kettle"], 10}, [2]int64{p["Cold Brew Bottle"], 8},
		[2]int64{p["Barista Apron"], 2}), nil)
	assert.Equal(t, http.StatusBadRequest, status, "one customer took 20 units of the scarcest products: %s", msg)
	assert.Contains(t, msg, `P0001 too many unpaid units of product "Pour-Over Kettle"`)
	_, status, msg = api.order(t, demo, "demo@example.com", items([2]int64{p["Pour-Over Kettle"], 2}, [2]int64{p["Barista Apron"], 2},
		[2]int64{p["Coffee Grinder"], 3}, [2]int64{p["Limited Edition Tamper"], 1}), nil)
	assert.Equal(t, http.StatusBadRequest, status, "one customer took the rest of the scarcest products: %s", msg)
	assert.Equal(t, before, pgtest.Snapshot(t, api.admin), "a refused order took stock")

	// Twice: the attacker takes the most the bound allows of each, then one more of each;
	// another customer (alice, then bob, who hold nothing yet) buys one of each; then the
	// attacker's orders are released unpaid (the deployed release-unpaid.sh) and the attacker
	// orders at once again.
	for i, other := range []string{"alice@example.com", "bob@example.com"} {
		round := i + 1
		for _, name := range scarceProducts {
			s, h := stock(name), held(demo, name)
			most := mostOf(s, h, percent)
			require.Positive(t, most, "round %d: %s (stock %d, held %d): nothing to take", round, name, s, h)
			if most < s {
				_, status, msg = api.order(t, demo, "demo@example.com", items([2]int64{p[name], int64(most + 1)}), nil)
				assert.Equal(t, http.StatusBadRequest, status, "round %d: %d of %s (stock %d): %s", round, most+1, name, s, msg)
				assert.Contains(t, msg, fmt.Sprintf(`too many unpaid units of product "%s"`, name))
			}
			_, status, msg = api.order(t, demo, "demo@example.com", items([2]int64{p[name], int64(most)}), nil)
			require.Equal(t, http.StatusOK, status, "round %d: the most of %s (%d of %d): %s", round, name, most, s, msg)
			// Only a product's last unit goes to the first who orders it; otherwise at least
			// as many units stay as the attacker holds.
			if s > 1 {
				assert.GreaterOrEqual(t, stock(name), held(demo, name), "round %d: %s: the attacker holds more than is left", round, name)
			}
		}
		bought := 0
		for _, name := range scarceProducts {
			_, status, msg = api.order(t, u[other], other, items([2]int64{p[name], 1}), nil)
			if status == http.StatusOK {
				bought++
				continue
			}
			assert.Contains(t, msg, "insufficient stock", "round %d: %s", round, name)
			assert.Equal(t, "Limited Edition Tamper", name, "round %d: the other customer cannot buy %s: %s", round, name, msg)
		}
		assert.Equal(t, 4, bought, "round %d: %s buys 4 of the 5 scarcest products (all but the last tamper)", round, other)

		_, err := api.admin.Exec(context.Background(), "UPDATE shop.orders SET created_at = now() - interval '2 hours' WHERE user_id = $1 AND status = 'placed'", demo)
		require.NoError(t, err)
		assert.Contains(t, runReleaseUnpaid(t, api.s, "60"), "release-unpaid: released 5 order(s)")
		assert.Equal(t, "0", pgtest.QueryString(t, api.admin, "SELECT count(*)::text FROM shop.orders WHERE user_id = $1 AND status = 'placed'", demo))
	}
}
