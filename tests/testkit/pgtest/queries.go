package pgtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// QueryString runs a query returning one value, read as text.
func QueryString(t testing.TB, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var v string
	require.NoError(t, conn.QueryRow(context.Background(), sql, args...).Scan(&v), sql)
	return v
}

// Querier is a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// NumbersByKey maps the first column of each row to its second, a whole number: product name
// -> id, table -> rows read.
func NumbersByKey(t testing.TB, q Querier, sql string) map[string]int64 {
	t.Helper()
	rows, err := q.Query(context.Background(), sql)
	require.NoError(t, err)
	ids := map[string]int64{}
	for rows.Next() {
		var key string
		var id int64
		require.NoError(t, rows.Scan(&key, &id))
		ids[key] = id
	}
	require.NoError(t, rows.Err())
	return ids
}

// ProductIDs maps each product's name to its id.
func ProductIDs(t testing.TB, conn *pgx.Conn) map[string]int64 {
	return NumbersByKey(t, conn, "SELECT name, id FROM shop.products")
}

// UserIDs maps each user's email to its id.
func UserIDs(t testing.TB, conn *pgx.Conn) map[string]int64 {
	return NumbersByKey(t, conn, "SELECT email, id FROM shop.users")
}

// State is what an order changes: stock per product and the number of orders and items.
type State struct {
	Stock  map[string]int
	Orders int
	Items  int
}

// Snapshot counts what orders change, to prove a refused order changed nothing.
func Snapshot(t testing.TB, conn *pgx.Conn) State {
	t.Helper()
	ctx := context.Background()
	st := State{Stock: map[string]int{}}
	rows, err := conn.Query(ctx, "SELECT name, stock FROM shop.products")
	require.NoError(t, err)
	for rows.Next() {
		var name string
		var stock int
		require.NoError(t, rows.Scan(&name, &stock))
		st.Stock[name] = stock
	}
	require.NoError(t, rows.Err())
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT (SELECT count(*) FROM shop.orders), (SELECT count(*) FROM shop.order_items)").Scan(&st.Orders, &st.Items))
	return st
}

// Items is the JSON text of an order's items.
func Items(items ...[2]int64) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = fmt.Sprintf(`{"product_id": %d, "quantity": %d}`, it[0], it[1])
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// RequireError asserts a PostgreSQL error with this SQLSTATE whose message contains want.
func RequireError(t testing.TB, err error, sqlState, want string) {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a PostgreSQL error %s, got %v", sqlState, err)
	require.Equal(t, sqlState, pgErr.Code, "SQLSTATE of %q", pgErr.Message)
	require.Contains(t, pgErr.Message, want)
}

// AsRole runs fn in a transaction as PostgREST runs a request: SET LOCAL ROLE role and the
// JWT claims (if any) and the JWT secret as transaction-local settings. It always rolls back
// unless commit is set.
func AsRole(ctx context.Context, conn *pgx.Conn, role, claims string, commit bool, fn func(pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT set_config('request.jwt.claims', $1, true)", claims); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	if commit {
		return tx.Commit(ctx)
	}
	return nil
}

// LoginResult is what api.login answered: a token, or an error with the HTTP status it set
// through response.status.
type LoginResult struct {
	Token   string `json:"token"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  string `json:"-"`
}

// Login calls api.login as PostgREST does for POST /rpc/login (as web_anon, committed, so
// failure counts persist) and reads the response.status it set.
func Login(ctx context.Context, conn *pgx.Conn, email, password string) (LoginResult, error) {
	var body string
	var res LoginResult
	err := AsRole(ctx, conn, "web_anon", "", true, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT api.login($1, $2)::text, coalesce(current_setting('response.status', true), '')",
			email, password).Scan(&body, &res.Status)
	})
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		return res, fmt.Errorf("login answer %q: %w", body, err)
	}
	return res, nil
}

// Claims is the request.jwt.claims of a logged-in user.
func Claims(userID int64) string {
	return fmt.Sprintf(`{"role": "web_user", "user_id": %d}`, userID)
}
