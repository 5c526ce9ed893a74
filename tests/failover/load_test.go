package failover

// Customers placing orders at a steady rate through the real PgBouncer on the deployed
// pgbouncer.ini, whose upstream is database-service (the primaryService forwarder): the
// request PostgREST 12 sends for POST /rpc/place_order, as the authenticator (quorum commit:
// synchronous_commit on, set by credentials-sync.sh). An order counts as acknowledged when
// COMMIT answered and the body names its id; a client whose connection broke reconnects, as
// PostgREST's pool does.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/config"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/postgrest"
)

const (
	customers = 4                      // concurrent clients, one connection each
	interval  = 100 * time.Millisecond // between one client's orders: 40 orders/s in all
)

// request is one order attempt.
type request struct {
	start, end time.Time
	id         int64 // the acknowledged order's id
	err        error
}

// orderLoad is the customers' load; requests are appended as they end.
type orderLoad struct {
	mu       sync.Mutex
	requests []request
	stop     context.CancelFunc
	done     sync.WaitGroup
}

// startShop puts the shop on the leader as its Jobs do (database-migrate, credentials),
// opens database-service and PgBouncer in front of it, and starts the customers.
func startShop(c *shopCluster, leader *member) (*orderLoad, *primaryService) {
	t := c.t
	shop := c.shop(leader)
	shop.ApplySchema(t, pgtest.Database, true) // with the dev seed's catalogue to order from
	shop.SyncCredentialsWithReplication(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, replicationPass)
	admin, err := connect(leader, pgtest.Database)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	ctx := context.Background()
	// Neither stock nor the unpaid-units cap may refuse an order of the load.
	for _, sql := range []string{
		"UPDATE shop.order_limits SET max_open_units = 1000000",
		"UPDATE shop.products SET stock = 1000000",
		fmt.Sprintf(`INSERT INTO shop.users (email, name, password_hash)
			SELECT 'failover' || g || '@example.com', 'Failover Customer ' || g, 'failover-password' FROM generate_series(1, %d) g`, customers),
	} {
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	users := pgtest.UserIDs(t, admin)
	var products []int64
	for _, id := range pgtest.ProductIDs(t, admin) {
		products = append(products, id)
	}
	slices.Sort(products)
	roleName, roleValue, err := postgrest.RoleSetting(ctx, admin, "web_user")
	require.NoError(t, err)

	service := startPrimaryService(t, c)
	bouncer := pgtest.StartPgBouncer(t, &pgtest.Server{Port: service.Port}, "pgbouncer", pgtest.AuthenticatorPassword,
		components.PgBouncerPool(config.Defaults().Backend))

	loadCtx, stop := context.WithCancel(context.Background())
	l := &orderLoad{stop: stop}
	placeOrder := postgrest.PlaceOrder()
	for n := range customers {
		email := fmt.Sprintf("failover%d@example.com", n+1)
		user := users[email]
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					_ = conn.Close(context.Background())
				}
			}()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				r := request{start: time.Now()}
				if conn == nil {
					cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					conn, r.err = pgx.Connect(cctx, bouncer.ConnString(pgtest.AuthenticatorPassword))
					cancel()
				}
				if r.err == nil {
					p1, p2 := products[(n+i)%len(products)], products[(n+i+3)%len(products)]
					body := `{"items": ` + pgtest.Items([2]int64{p1, 1}, [2]int64{p2, 1}) + `}`
					vars := postgrest.OrderVars(roleName, roleValue, user, email, time.Now().Add(time.Hour).Unix(), body)
					// Bounded as PostgREST's own request is by PgBouncer's and the role's timeouts.
					rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					var answer string
					answer, r.err = postgrest.Run(rctx, conn, placeOrder, vars)
					cancel()
					if r.err == nil {
						var o struct {
							ID     int64  `json:"id"`
							Status string `json:"status"`
						}
						if jerr := json.Unmarshal([]byte(answer), &o); jerr != nil || o.ID == 0 || o.Status != "placed" {
							r.err = fmt.Errorf("unexpected answer %q (%v)", answer, jerr)
						}
						r.id = o.ID
					}
				}
				if r.err != nil && conn != nil {
					_ = conn.Close(context.Background())
					conn = nil
				}
				r.end = time.Now()
				l.mu.Lock()
				l.requests = append(l.requests, r)
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.finish)
	return l, service
}

// finish stops the customers and waits for their last requests.
func (l *orderLoad) finish() {
	l.stop()
	l.done.Wait()
}

// snapshot is the requests so far, by end time.
func (l *orderLoad) snapshot() []request {
	l.mu.Lock()
	out := append([]request(nil), l.requests...)
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].end.Before(out[j].end) })
	return out
}

// acknowledgedSince counts the orders acknowledged after a moment.
func (l *orderLoad) acknowledgedSince(at time.Time) int {
	n := 0
	for _, r := range l.snapshot() {
		if r.err == nil && r.end.After(at) {
			n++
		}
	}
	return n
}

// outage is what the customers saw around a moment: the last order acknowledged before it,
// the first after, the failed requests in between.
type outage struct {
	lastBefore, firstAfter  time.Time
	gap                     time.Duration  // between those two acknowledgements
	longest                 time.Duration  // the longest time between two acknowledgements of the run
	failed                  []string       // requests that failed
	firstFailed, lastFailed time.Time      // when the first failed request started, the last ended
	kinds                   map[string]int // the failures by error (its first 60 characters)
	acknowledged            []int64        // every acknowledged order's id
}

func (l *orderLoad) outage(at time.Time) outage {
	o := outage{kinds: map[string]int{}}
	var prev time.Time
	for _, r := range l.snapshot() {
		if r.err == nil {
			if !prev.IsZero() {
				o.longest = max(o.longest, r.end.Sub(prev))
			}
			prev = r.end
		}
		switch {
		case r.err != nil:
			o.failed = append(o.failed, fmt.Sprintf("%s..%s: %v", r.start.Sub(at).Round(time.Millisecond), r.end.Sub(at).Round(time.Millisecond), r.err))
			if o.firstFailed.IsZero() || r.start.Before(o.firstFailed) {
				o.firstFailed = r.start
			}
			o.lastFailed = r.end
			kind := r.err.Error()
			o.kinds[kind[:min(60, len(kind))]]++
		case !r.end.After(at):
			o.acknowledged = append(o.acknowledged, r.id)
			o.lastBefore = r.end
		default:
			o.acknowledged = append(o.acknowledged, r.id)
			if o.firstAfter.IsZero() {
				o.firstAfter = r.end
			}
		}
	}
	if !o.lastBefore.IsZero() && !o.firstAfter.IsZero() {
		o.gap = o.firstAfter.Sub(o.lastBefore)
	}
	return o
}

// perSecond is the acknowledged orders in each second from at on (second 0 first), for the
// figures: where the load stopped and came back.
func (l *orderLoad) perSecond(at time.Time) []int {
	var out []int
	for _, r := range l.snapshot() {
		if r.err != nil || r.end.Before(at) {
			continue
		}
		i := int(r.end.Sub(at) / time.Second)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

// missingOrders are the acknowledged ids that m's shop.orders does not hold.
func missingOrders(m *member, ids []int64) ([]int64, error) {
	conn, err := connect(m, pgtest.Database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(),
		"SELECT a.id FROM unnest($1::bigint[]) AS a(id) WHERE NOT EXISTS (SELECT FROM shop.orders o WHERE o.id = a.id) ORDER BY 1", ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
