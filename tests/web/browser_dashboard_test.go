package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/nginxtest"
)

// A headless Chromium loads the dashboard from the real nginx, which proxies /api/* to a
// Go stand-in that answers exactly as PostgREST answers those paths.

const browserJWTSecret = "browser-test-secret"

type browserProduct struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceCents  int    `json:"-"`
	Stock       int    `json:"stock"`
}

type browserOrderItem struct {
	ProductID      int    `json:"product_id"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int    `json:"-"`
}

type browserOrder struct {
	ID        int                `json:"id"`
	UserID    int                `json:"user_id"`
	Status    string             `json:"status"`
	CreatedAt string             `json:"created_at"`
	Items     []browserOrderItem `json:"items"`
}

type browserUser struct {
	ID       int
	Email    string
	Password string
}

// browserPostgREST is the stand-in API: PostgREST's paths, status codes, bodies and
// content types for the tables, the stats view and the two functions.
type browserPostgREST struct {
	mu       sync.Mutex
	users    []browserUser
	products []browserProduct
	orders   []browserOrder
}

func browserSeed() *browserPostgREST {
	return &browserPostgREST{
		users: []browserUser{
			{1, "alice@example.com", "correct horse"},
			{2, "bob@example.com", "battery staple"},
			{3, "carol@example.com", "hunter22"},
		},
		products: []browserProduct{
			{1, "Espresso Beans", "Single origin, 1 kg", 1999, 12},
			{2, "Pour-over Kettle", "Gooseneck, 1 l", 3450, 3},
			{3, "Ceramic Mug", "350 ml, dishwasher safe", 999, 40},
			{4, "Barista Grinder", "Conical burrs <b>not bold</b>", 123450, 25},
		},
		orders: []browserOrder{
			{1, 1, "placed", "2026-11-20T10:15:00+00:00", []browserOrderItem{{3, "Ceramic Mug", 2, 999}}},
			{2, 2, "placed", "2026-11-21T08:00:00+00:00", []browserOrderItem{{1, "Espresso Beans", 1, 1999}}},
		},
	}
}

func browserMoney(cents int) float64 { return float64(cents) / 100 }

func (p browserProduct) MarshalJSON() ([]byte, error) {
	type plain browserProduct
	return json.Marshal(struct {
		plain
		Price float64 `json:"price"`
	}{plain(p), browserMoney(p.PriceCents)})
}

func (i browserOrderItem) MarshalJSON() ([]byte, error) {
	type plain browserOrderItem
	return json.Marshal(struct {
		plain
		UnitPrice float64 `json:"unit_price"`
	}{plain(i), browserMoney(i.UnitPriceCents)})
}

func (o browserOrder) totalCents() int {
	total := 0
	for _, i := range o.Items {
		total += i.Quantity * i.UnitPriceCents
	}
	return total
}

func (o browserOrder) MarshalJSON() ([]byte, error) {
	type plain browserOrder
	return json.Marshal(struct {
		plain
		Total float64 `json:"total"`
	}{plain(o), browserMoney(o.totalCents())})
}

// stats is the stats view's single row; as api.stats, the order figures are the signed-in
// caller's own (userID 0: a visitor, null), and users is null for everyone.
func (api *browserPostgREST) stats(userID int) map[string]any {
	orders, revenue, sold, low := 0, 0, 0, 0
	for _, o := range api.orders {
		if o.UserID != userID {
			continue
		}
		orders++
		revenue += o.totalCents()
		for _, i := range o.Items {
			sold += i.Quantity
		}
	}
	for _, p := range api.products {
		if p.Stock < 5 {
			low++
		}
	}
	row := map[string]any{
		"users": nil, "products": len(api.products), "orders": orders,
		"revenue": browserMoney(revenue), "items_sold": sold, "low_stock_products": low,
	}
	if userID == 0 {
		for _, withheld := range []string{"orders", "revenue", "items_sold"} {
			row[withheld] = nil
		}
	}
	return row
}

func browserWrite(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType+"; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// browserError writes PostgREST's error body.
func browserError(w http.ResponseWriter, status int, code, message string) {
	browserWrite(w, status, "application/json", map[string]any{
		"code": code, "message": message, "details": nil, "hint": nil,
	})
}

func browserB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func browserSign(unsigned string) string {
	mac := hmac.New(sha256.New, []byte(browserJWTSecret))
	mac.Write([]byte(unsigned))
	return browserB64(mac.Sum(nil))
}

// browserToken mints an HS256 JWT the way the login function does.
func browserToken(u browserUser) string {
	header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"role": "web_user", "user_id": u.ID, "email": u.Email, "exp": time.Now().Add(time.Hour).Unix(),
	})
	unsigned := browserB64(header) + "." + browserB64(claims)
	return unsigned + "." + browserSign(unsigned)
}

// userFromToken checks the bearer token like PostgREST does; ok=false means it answered.
func (api *browserPostgREST) userFromToken(w http.ResponseWriter, r *http.Request, table string) (int, bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		browserError(w, http.StatusUnauthorized, "42501", "permission denied for "+table)
		return 0, false
	}
	parts := strings.Split(strings.TrimPrefix(auth, "Bearer "), ".")
	if !strings.HasPrefix(auth, "Bearer ") || len(parts) != 3 || browserSign(parts[0]+"."+parts[1]) != parts[2] {
		browserError(w, http.StatusUnauthorized, "PGRST301", "JWSError JWSInvalidSignature")
		return 0, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		UserID int `json:"user_id"`
	}
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		browserError(w, http.StatusUnauthorized, "PGRST301", "JWSError CompactDecodeError")
		return 0, false
	}
	return claims.UserID, true
}

// browserMaxRows is the deployed db-max-rows (apiMaxRows' default).
const browserMaxRows = 100

// browserPage is the page of rows a read asked for, as PostgREST answers it: from offset,
// at most limit rows and never more than db-max-rows; and the offset.
func browserPage[T any](r *http.Request, rows []T) ([]T, int) {
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	limit := browserMaxRows
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil {
		limit = min(l, browserMaxRows)
	}
	offset = min(max(offset, 0), len(rows))
	return rows[offset:min(offset+limit, len(rows))], offset
}

func (api *browserPostgREST) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api.mu.Lock()
	defer api.mu.Unlock()
	route := r.Method + " " + r.URL.Path
	switch route {
	case "GET /health":
		w.WriteHeader(http.StatusOK) // Envoy answers from PostgREST's /ready: empty 200
	case "GET /products":
		products := append([]browserProduct(nil), api.products...)
		if r.URL.Query().Get("order") == "id" {
			sort.Slice(products, func(i, j int) bool { return products[i].ID < products[j].ID })
		}
		products, first := browserPage(r, products)
		w.Header().Set("Content-Range", fmt.Sprintf("%d-%d/*", first, first+len(products)-1))
		browserWrite(w, http.StatusOK, "application/json", products)
	case "GET /stats":
		userID := 0
		if r.Header.Get("Authorization") != "" {
			id, ok := api.userFromToken(w, r, "view stats")
			if !ok {
				return
			}
			userID = id
		}
		if r.Header.Get("Accept") == "application/vnd.pgrst.object+json" {
			browserWrite(w, http.StatusOK, "application/vnd.pgrst.object+json", api.stats(userID))
			return
		}
		browserWrite(w, http.StatusOK, "application/json", []map[string]any{api.stats(userID)})
	case "GET /orders":
		userID, ok := api.userFromToken(w, r, "table orders")
		if !ok {
			return
		}
		mine := []browserOrder{}
		for _, o := range api.orders {
			if o.UserID == userID {
				mine = append(mine, o)
			}
		}
		if r.URL.Query().Get("order") == "id.desc" {
			sort.Slice(mine, func(i, j int) bool { return mine[i].ID > mine[j].ID })
		}
		mine, _ = browserPage(r, mine)
		browserWrite(w, http.StatusOK, "application/json", mine)
	case "POST /rpc/login":
		var in struct{ Email, Password string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			browserError(w, http.StatusBadRequest, "PGRST102", "Empty or invalid json")
			return
		}
		for _, u := range api.users {
			if u.Email == in.Email && u.Password == in.Password {
				browserWrite(w, http.StatusOK, "application/json", map[string]string{"token": browserToken(u)})
				return
			}
		}
		browserError(w, http.StatusUnauthorized, "28P01", "invalid email or password") // api.login's answer
	case "POST /rpc/place_order":
		userID, ok := api.userFromToken(w, r, "function place_order")
		if !ok {
			return
		}
		var in struct {
			Items []struct {
				ProductID int `json:"product_id"`
				Quantity  int `json:"quantity"`
			} `json:"items"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Items) == 0 {
			browserError(w, http.StatusBadRequest, "P0001", "an order needs at least one item")
			return
		}
		order := browserOrder{ID: len(api.orders) + 1, UserID: userID, Status: "placed",
			CreatedAt: time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00")}
		for _, item := range in.Items {
			idx := -1
			for i, p := range api.products {
				if p.ID == item.ProductID {
					idx = i
				}
			}
			if idx < 0 {
				browserError(w, http.StatusBadRequest, "P0001", fmt.Sprintf("unknown product %d", item.ProductID))
				return
			}
			if api.products[idx].Stock < item.Quantity {
				browserError(w, http.StatusBadRequest, "P0001", fmt.Sprintf("insufficient stock for product %d", item.ProductID))
				return
			}
			p := api.products[idx]
			order.Items = append(order.Items, browserOrderItem{p.ID, p.Name, item.Quantity, p.PriceCents})
		}
		// One transaction: every line checked before any stock moves.
		for _, item := range order.Items {
			for i := range api.products {
				if api.products[i].ID == item.ProductID {
					api.products[i].Stock -= item.Quantity
				}
			}
		}
		api.orders = append(api.orders, order)
		browserWrite(w, http.StatusOK, "application/json", order)
	default:
		browserError(w, http.StatusNotFound, "PGRST125", "Invalid path specified in request URL")
	}
}

// browserConsole collects what would show in DevTools as an error: uncaught exceptions,
// console.error, and browser-side errors such as Content-Security-Policy violations.
// Failed HTTP responses (the 403 of a bad login) are expected and not collected.
type browserConsole struct {
	mu   sync.Mutex
	errs []string
}

func (c *browserConsole) Errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

func (c *browserConsole) collect(ctx context.Context) {
	for m, err := range chromedp.Console(ctx) {
		if err != nil {
			return
		}
		if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
			c.mu.Lock()
			c.errs = append(c.errs, m.String())
			c.mu.Unlock()
		}
	}
}

// browserContext starts a headless Chromium with a fresh profile and no network of its
// own (the machine has no internet).
func browserContext(t *testing.T, bin string) (context.Context, *browserConsole) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider"),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	_, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	require.NoError(t, err, "start chromium")
	console := &browserConsole{}
	go console.collect(ctx)
	return ctx, console
}

// browserWait polls a JavaScript condition until it is true.
func browserWait(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second)))
	require.NoError(t, err, "waiting for %s: %s", what, expr)
}

func browserText(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return strings.TrimSpace(browserEval[string](t, ctx, fmt.Sprintf(`document.getElementById(%q).textContent`, id)))
}

type browserRow map[string]string

// browserRows reads a table body's rows: data-field cells plus the row's data-* ids.
func browserRows(t *testing.T, ctx context.Context, bodyID string) []browserRow {
	t.Helper()
	return browserEval[[]browserRow](t, ctx, fmt.Sprintf(`
		Array.from(document.querySelectorAll('#%s > tr[data-testid]')).map(tr => {
			const row = {};
			tr.querySelectorAll('[data-field]').forEach(td => { row[td.dataset.field] = td.textContent; });
			return row;
		})`, bodyID))
}

func browserVisible(id string) string {
	return fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && !e.hidden && e.offsetParent !== null; })()`, id)
}

// TestDashboardInBrowser drives the dashboard through its whole story: it shows the live
// state of every tier, a user signs in, orders, and sees stock and orders change; a
// short-stock order shows PostgREST's error; a dead backend shows as down.
func TestDashboardInBrowser(t *testing.T) {
	chromium := testkit.RequireEngine(t, "chromium")
	api := browserSeed()
	ngx, up := nginxtest.BackedBy(t, api, func(s *assets.NginxSettings) { s.Color = "green" })
	nginxtest.WriteRelease(t, ngx.Dirs, "green", "2.3.1")
	ctx, console := browserContext(t, chromium)
	start := time.Now()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ngx.Base+"/")))

	t.Run("products and stats show the API's values", func(t *testing.T) {
		browserWait(t, ctx, "products", `document.querySelectorAll('#products-body > tr[data-testid=product-row]').length === 4`)
		assert.Equal(t, []browserRow{
			{"id": "1", "name": "Espresso Beans", "description": "Single origin, 1 kg", "price": "$19.99", "stock": "12"},
			{"id": "2", "name": "Pour-over Kettle", "description": "Gooseneck, 1 l", "price": "$34.50", "stock": "3"},
			{"id": "3", "name": "Ceramic Mug", "description": "350 ml, dishwasher safe", "price": "$9.99", "stock": "40"},
			{"id": "4", "name": "Barista Grinder", "description": "Conical burrs <b>not bold</b>", "price": "$1234.50", "stock": "25"},
		}, browserRows(t, ctx, "products-body"), "API text is shown as text, never as markup")

		browserWait(t, ctx, "stats", `document.getElementById('stat-products').textContent !== '–'`)
		// Signed out: the order figures are withheld, shown as dashes, never as zeros; the
		// shop's number of users is shown to nobody (issue 27, finding 8).
		assert.False(t, browserEval[bool](t, ctx, `!!document.getElementById('stat-users')`), "the shop's users on the dashboard")
		for id, want := range map[string]string{
			"stat-products": "4", "stat-orders": "–", "stat-revenue": "–",
			"stat-items-sold": "–", "stat-low-stock": "1",
		} {
			assert.Equal(t, want, browserText(t, ctx, id), id)
		}
	})

	t.Run("release and tier health", func(t *testing.T) {
		browserWait(t, ctx, "version", `document.getElementById('version').textContent === '2.3.1'`)
		assert.Equal(t, "green", browserText(t, ctx, "color"))
		browserWait(t, ctx, "all tiers up", `['frontend','backend','database'].every(
			t => document.getElementById('health-' + t).dataset.state === 'up')`)
		for _, tier := range []string{"frontend", "backend", "database"} {
			assert.Equal(t, "up", browserText(t, ctx, "health-"+tier), tier)
		}
	})

	t.Run("bad credentials show PostgREST's message", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#login-email"), "alice@example.com"),
			chromedp.SetValue(chromedp.CSS("#login-password"), "wrong"),
			chromedp.Click(chromedp.CSS("#login-submit")),
		))
		browserWait(t, ctx, "login error", browserVisible("login-error"))
		assert.Equal(t, "invalid email or password", browserText(t, ctx, "login-error"))
		assert.True(t, browserEval[bool](t, ctx, `document.getElementById('session').hidden`), "still signed out")
	})

	t.Run("sign in shows my orders", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#login-password"), "correct horse"),
			chromedp.Click(chromedp.CSS("#login-submit")),
		))
		browserWait(t, ctx, "orders", browserVisible("orders-card")+
			` && document.querySelectorAll('#orders-body > tr[data-testid=order-row]').length === 1`)
		assert.Equal(t, "alice@example.com", browserText(t, ctx, "session-email"))
		assert.False(t, browserEval[bool](t, ctx, browserVisible("login-error")), "the old error is gone")
		rows := browserRows(t, ctx, "orders-body")
		require.Len(t, rows, 1)
		assert.Equal(t, "1", rows[0]["id"])
		assert.Equal(t, "placed", rows[0]["status"])
		assert.Equal(t, "2 × Ceramic Mug @ $9.99", rows[0]["items"])
		assert.Equal(t, "$19.98", rows[0]["total"])
		token := browserEval[string](t, ctx, `sessionStorage.getItem('ecommerce.token')`)
		assert.Len(t, strings.Split(token, "."), 3, "a JWT is kept for the tab")
		// Alice's own figures: her one order of 2 mugs, not the other customer's order too.
		browserWait(t, ctx, "signed-in stats", `document.getElementById('stat-orders').textContent === '1'`)
		for id, want := range map[string]string{
			"stat-products": "4", "stat-orders": "1", "stat-revenue": "$19.98",
			"stat-items-sold": "2", "stat-low-stock": "1",
		} {
			assert.Equal(t, want, browserText(t, ctx, id), id)
		}
	})

	t.Run("placing an order updates stock, stats and orders", func(t *testing.T) {
		up.Take()
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#order-product"), "1"),
			chromedp.SetValue(chromedp.CSS("#order-quantity"), "2"),
			chromedp.Click(chromedp.CSS("#order-submit")),
		))
		browserWait(t, ctx, "order message", browserVisible("order-message"))
		assert.Equal(t, "Order #3 placed, total $39.98.", browserText(t, ctx, "order-message"))
		browserWait(t, ctx, "new stock", `(() => {
			const row = document.querySelector('#products-body > tr[data-product-id="1"] [data-field=stock]');
			return !!row && row.textContent === '10';
		})()`)
		browserWait(t, ctx, "new order listed", `document.querySelectorAll('#orders-body > tr[data-testid=order-row]').length === 2`)
		rows := browserRows(t, ctx, "orders-body")
		assert.Equal(t, "3", rows[0]["id"], "newest first")
		assert.Equal(t, "2 × Espresso Beans @ $19.99", rows[0]["items"])
		assert.Equal(t, "$39.98", rows[0]["total"])
		browserWait(t, ctx, "stats refreshed", `document.getElementById('stat-orders').textContent === '2'`)
		assert.Equal(t, "$59.96", browserText(t, ctx, "stat-revenue"))
		assert.Equal(t, "4", browserText(t, ctx, "stat-items-sold"))

		var order *nginxtest.UpstreamRequest
		for _, r := range up.Take() {
			if r.Path == "/rpc/place_order" {
				order = &r
			}
		}
		require.NotNil(t, order, "place_order reached the API")
		assert.Equal(t, "POST", order.Method)
		assert.JSONEq(t, `{"items":[{"product_id":1,"quantity":2}]}`, order.Body)
		assert.True(t, strings.HasPrefix(order.Header.Get("Authorization"), "Bearer "))
		assert.Equal(t, "application/json", order.Header.Get("Content-Type"))

		require.NoError(t, os.MkdirAll("artifacts", 0o755))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("artifacts", "dashboard.png"), png, 0o644))
	})

	t.Run("short stock shows the API's error and changes nothing", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#order-product"), "2"),
			chromedp.SetValue(chromedp.CSS("#order-quantity"), "999"),
			chromedp.Click(chromedp.CSS("#order-submit")),
		))
		browserWait(t, ctx, "order error", `document.getElementById('order-message').textContent.startsWith('Order failed')`)
		assert.Equal(t, "Order failed: insufficient stock for product 2", browserText(t, ctx, "order-message"))
		assert.Contains(t, browserEval[string](t, ctx, `document.getElementById('order-message').className`), "error")
		rows := browserRows(t, ctx, "products-body")
		require.Len(t, rows, 4)
		assert.Equal(t, "3", rows[1]["stock"])
		assert.Len(t, browserRows(t, ctx, "orders-body"), 2)
	})

	t.Run("a long catalogue is shown a page at a time", func(t *testing.T) {
		api.mu.Lock()
		for id := 5; id <= 45; id++ {
			api.products = append(api.products, browserProduct{id, fmt.Sprintf("Product %d", id), "", 100, 10})
		}
		api.mu.Unlock()
		ids := func() []string {
			var out []string
			for _, row := range browserRows(t, ctx, "products-body") {
				out = append(out, row["id"])
			}
			return out
		}
		span := func(from, to int) []string {
			var out []string
			for id := from; id <= to; id++ {
				out = append(out, strconv.Itoa(id))
			}
			return out
		}
		for _, step := range []struct {
			click, label string
			from, to     int
			prev, next   bool // enabled
		}{
			{"", "1–20", 1, 20, false, true},
			{"#products-next", "21–40", 21, 40, true, true},
			{"#products-next", "41–45", 41, 45, true, false},
			{"#products-prev", "21–40", 21, 40, true, true},
		} {
			if step.click != "" {
				require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(step.click))))
			}
			browserWait(t, ctx, "page "+step.label, fmt.Sprintf(`document.getElementById('products-page').textContent === %q`, step.label))
			assert.Equal(t, span(step.from, step.to), ids(), "page %s", step.label)
			assert.Equal(t, !step.prev, browserEval[bool](t, ctx, `document.getElementById('products-prev').disabled`), "Previous on %s", step.label)
			assert.Equal(t, !step.next, browserEval[bool](t, ctx, `document.getElementById('products-next').disabled`), "Next on %s", step.label)
		}
		for _, req := range up.Take() {
			if req.Path == "/products" {
				assert.Regexp(t, `^order=id&limit=21&offset=(0|20|40)$`, req.RawQuery, "every products read asks for one page")
			}
		}
	})

	t.Run("a dead backend shows as down", func(t *testing.T) {
		up.Server.Close()
		browserWait(t, ctx, "backend down", `['backend','database'].every(
			t => document.getElementById('health-' + t).dataset.state === 'down')`)
		assert.Equal(t, "up", browserText(t, ctx, "health-frontend"), "nginx itself still answers")
		assert.Equal(t, "HTTP 502", browserText(t, ctx, "health-backend-detail"))
		assert.Contains(t, browserText(t, ctx, "stats-error"), "the API is unavailable")
	})

	assert.Empty(t, console.Errors(), "no script errors or CSP violations")
	t.Logf("browser story took %s", time.Since(start).Round(time.Millisecond))
}

func browserEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}
