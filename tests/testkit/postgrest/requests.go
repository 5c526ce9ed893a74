// Package postgrest holds the request transactions PostgREST 12 runs against the database,
// as text (place_order.sql, get_products.sql): the engine tests run them through pgx and
// make bench-orders hands the same files to pgbench as its scripts, so what is measured is
// what is tested. The text follows PostgREST 12.2's query builder (src/PostgREST/Query.hs,
// Query/Statements.hs, Query/SqlFragment.hs) and hasql-transaction's BEGIN.
package postgrest

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed place_order.sql get_products.sql
var files embed.FS

// Request is one PostgREST request transaction.
type Request struct {
	Name string // the file's name, e.g. place_order.sql
	Text string // pgbench syntax: statements end with ";" at the end of a line, :name is a parameter
}

func load(name string) Request {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return Request{Name: name, Text: string(b)}
}

// PlaceOrder is POST /rpc/place_order for a signed-in customer.
func PlaceOrder() Request { return load("place_order.sql") }

// GetProducts is GET /products?order=id for an anonymous visitor.
func GetProducts() Request { return load("get_products.sql") }

// Statements are the request's statements in order, without comments and the final ";".
func (r Request) Statements() []string {
	var out []string
	var cur []string
	for _, line := range strings.Split(r.Text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") || strings.TrimSpace(line) == "" {
			continue
		}
		cur = append(cur, line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(strings.Join(cur, "\n")), ";")
			out = append(out, stmt)
			cur = nil
		}
	}
	return out
}

// variable is a pgbench variable reference: ":name" not preceded by another ":" (casts) and
// not followed by "=" (named arguments, ":=").
var variable = regexp.MustCompile(`(^|[^:]):([A-Za-z_][A-Za-z0-9_]*)`)

// Bind turns a statement's :name parameters into $n, as pgbench -M extended does, and returns
// their values in order.
func Bind(stmt string, vars Vars) (string, []any, error) {
	index := map[string]int{}
	var args []any
	var missing []string
	sql := variable.ReplaceAllStringFunc(stmt, func(m string) string {
		sub := variable.FindStringSubmatch(m)
		name := sub[2]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		n, seen := index[name]
		if !seen {
			args = append(args, v)
			n = len(args)
			index[name] = n
		}
		return sub[1] + "$" + strconv.Itoa(n)
	})
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("no value for %s", strings.Join(missing, ", "))
	}
	return sql, args, nil
}

// Vars are the parameter values of one request.
type Vars map[string]string

// RoleSetting is the one setting of an API role that PostgREST 12 applies on each of its
// requests (pg_roles.rolconfig of the roles the authenticator may switch to; bootstrap.sql
// sets statement_timeout for web_anon and web_user). It fails unless there is exactly one,
// since the request text has one place for it.
func RoleSetting(ctx context.Context, conn *pgx.Conn, role string) (name, value string, err error) {
	var settings []string
	if err := conn.QueryRow(ctx, "SELECT coalesce(rolconfig, '{}') FROM pg_roles WHERE rolname = $1", role).Scan(&settings); err != nil {
		return "", "", err
	}
	if len(settings) != 1 {
		return "", "", fmt.Errorf("role %s has settings %q: the request text has room for exactly one", role, settings)
	}
	name, value, _ = strings.Cut(settings[0], "=")
	return name, value, nil
}

// Claims is the JSON PostgREST passes as request.jwt.claims for a token api.login issued
// (aeson writes the keys sorted).
func Claims(userID int64, email string, exp int64) string {
	return fmt.Sprintf(`{"email":%q,"exp":%d,"role":"web_user","user_id":%d}`, email, exp, userID)
}

// Token is an HS256-shaped bearer token of those claims, for the request's headers (the
// database only stores the header; PostgREST has verified the token before).
func Token(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims)) +
		"." + strings.Repeat("s", 43)
}

// Headers is the request.headers JSON of a request that came through nginx and Envoy.
func Headers(method, token string, contentLength int) string {
	h := map[string]string{
		"accept":                         "application/json",
		"host":                           "backend:3000",
		"user-agent":                     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"x-forwarded-for":                "203.0.113.7",
		"x-forwarded-proto":              "https",
		"x-request-id":                   "6f1c2a7e-4b7d-4a4e-9f7a-2d5c1b3e8a90",
		"x-envoy-expected-rq-timeout-ms": "15000",
	}
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	if method == "POST" {
		h["content-type"] = "application/json"
		h["content-length"] = strconv.Itoa(contentLength)
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// OrderVars are the values of POST /rpc/place_order for a customer with this body.
func OrderVars(roleSetting, roleSettingValue string, userID int64, email string, exp int64, body string) Vars {
	claims := Claims(userID, email, exp)
	return Vars{
		"search_path": `"api", "public"`, "role_setting": roleSetting, "role_setting_value": roleSettingValue,
		"role": "web_user", "claims": claims, "method": "POST", "path": "/rpc/place_order",
		"headers": Headers("POST", Token(claims), len(body)), "cookies": "{}", "body": body,
	}
}

// AnonymousVars are the values of a GET by an anonymous visitor (PostgREST's claims are then
// the anonymous role alone).
func AnonymousVars(roleSetting, roleSettingValue, path string) Vars {
	return Vars{
		"search_path": `"api", "public"`, "role_setting": roleSetting, "role_setting_value": roleSettingValue,
		"role": "web_anon", "claims": `{"role":"web_anon"}`, "method": "GET", "path": path,
		"headers": Headers("GET", "", 0), "cookies": "{}",
	}
}

// Run runs the request's statements on conn, one round trip each as PostgREST does, and
// returns the response body (the body column of the statement that has one). On an error
// it rolls back, as PostgREST does.
func Run(ctx context.Context, conn *pgx.Conn, r Request, vars Vars) (string, error) {
	body, _, err := RunSteps(ctx, conn, r, vars)
	return body, err
}

// RunSteps is Run that also returns how long each statement took.
func RunSteps(ctx context.Context, conn *pgx.Conn, r Request, vars Vars) (string, []time.Duration, error) {
	var body string
	var steps []time.Duration
	for _, stmt := range r.Statements() {
		sql, params, err := Bind(stmt, vars)
		if err != nil {
			return "", steps, fmt.Errorf("%s: %w", r.Name, err)
		}
		// Unnamed statements in the extended protocol, one round trip each, as PostgREST with
		// db-prepared-statements off (and as pgbench -M extended).
		args := append([]any{pgx.QueryExecModeExec}, params...)
		start := time.Now()
		if strings.Contains(sql, " AS body,") {
			var total *int64
			var page int64
			var headers, status *string
			var inserted string
			err = conn.QueryRow(ctx, sql, args...).Scan(&total, &page, &body, &headers, &status, &inserted)
		} else {
			_, err = conn.Exec(ctx, sql, args...)
		}
		steps = append(steps, time.Since(start))
		if err != nil {
			_, _ = conn.Exec(ctx, "ROLLBACK")
			return "", steps, err
		}
	}
	return body, steps, nil
}
