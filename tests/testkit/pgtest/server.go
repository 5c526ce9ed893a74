// Package pgtest runs a real PostgreSQL 15 server with the postgresql.conf, pg_hba.conf and
// init scripts the program deploys, and reads its state, for the postgres, attack and web
// tests.
package pgtest

// Helpers of the PostgreSQL and PgBouncer engine tests: each test starts its own real
// PostgreSQL 15 in temporary folders, with the rendered postgresql.conf, and loads the
// deployed init scripts the way the postgres image does. Names start with "pg" because other
// files share this package.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// The test server's roles, database and secrets: the deployment's names, test-only values.
const (
	Superuser             = "ecommerce" // POSTGRES_USER of the deployment
	Database              = "ecommerce" // POSTGRES_DB of the deployment
	SuperuserPassword     = "superuser-test-password"
	AuthenticatorPassword = "authenticator-test-password"
	JWTSecret             = "engine-test-jwt-secret-of-at-least-32-characters"
)

// deployedSettings are the program's default database settings; the tests change only
// what must differ outside a pod (port and socket folder).
var deployedSettings = assets.PostgresSettings{
	Port:                    5432,
	MaxConnections:          100,
	SharedBuffers:           "256MB",
	WorkMem:                 "4MB",
	EffectiveCacheSize:      "768MB",
	LogMinDurationStatement: 500,
	UnixSocketDir:           "/var/run/postgresql",
	HBAFile:                 "/etc/postgresql/pg_hba.conf",
	ReplicaWalKeepSize:      "2GB",
}

// Server is one running PostgreSQL of one test.
type Server struct {
	Dir       string // the test's folder, owned by the server's OS user
	SocketDir string
	Port      int // also listening on 127.0.0.1 (SCRAM only, for authenticator and ecommerce)
	ConfPath  string
	Settings  assets.PostgresSettings
	Path      string // PATH for client programs: the folders of psql, pg_dump, pg_restore first
	psql      string
}

// RunAs gives the credentials server processes run with: PostgreSQL and PgBouncer refuse
// to run as root, so under root they run as the OS user "postgres" (created by the
// postgresql packages); otherwise as the current user (nil).
func RunAs(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	require.NoError(t, err, "tests run as root, so the servers need the OS user postgres (apt-get install postgresql-15)")
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	require.NoError(t, err)
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	require.NoError(t, err)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// giveToServer makes a path the server user's (no-op unless running as root).
func giveToServer(t testing.TB, path string) {
	t.Helper()
	if cred := RunAs(t); cred != nil {
		require.NoError(t, os.Chown(path, int(cred.Uid), int(cred.Gid)))
	}
}

// WriteFile writes a file the server user can read.
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	giveToServer(t, path)
}

// mkdirForServer makes a folder the server user owns (e.g. for PgBouncer's pid file).
func mkdirForServer(t testing.TB, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	giveToServer(t, dir)
}

// SocketDir is a folder for a server's Unix socket, owned by the server user: a short path
// of its own, since Unix socket paths are limited to about 100 bytes.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgsock")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	giveToServer(t, dir)
	return dir
}

// ServerDir returns a fresh folder of the test that the server user owns and can reach.
func ServerDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		// t.TempDir makes both levels 0700 root: the server user must get through them.
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
		require.NoError(t, os.Chmod(dir, 0o755))
		giveToServer(t, dir)
	}
	return dir
}

// Process is a server process (postgres, pgbouncer) started by a test.
type Process struct {
	name    string
	logPath string
	Cmd     *exec.Cmd
	Done    chan struct{}
	err     error
}

// StartProcess starts a long-running server as the server user, logging to logPath, and
// stops it when the test ends (stopSignal first, SIGKILL after 15 s). The process gets
// SIGKILL should the test binary die. It is started from a goroutine locked to its OS thread
// because the kernel sends that "parent died" signal when the starting thread exits.
func StartProcess(t testing.TB, name, logPath string, stopSignal syscall.Signal, bin string, args ...string) *Process {
	t.Helper()
	return StartProcessEnv(t, name, logPath, stopSignal, nil, bin, args...)
}

// StartProcessEnv is StartProcess with variables added to the environment.
func StartProcessEnv(t testing.TB, name, logPath string, stopSignal syscall.Signal, env []string, bin string, args ...string) *Process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Dir = filepath.Dir(logPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: RunAs(t), Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p := &Process{name: name, logPath: logPath, Cmd: cmd, Done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer close(p.Done)
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			p.err = err
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
	}()
	require.NoError(t, <-started, "start %s", name)
	t.Cleanup(func() {
		select {
		case <-p.Done:
		default:
			_ = cmd.Process.Signal(stopSignal)
			select {
			case <-p.Done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-p.Done
			}
		}
		if t.Failed() {
			t.Logf("--- %s log (%s):\n%s", name, logPath, p.Log())
		}
	})
	return p
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}

// Exited tells whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// WaitConnect connects with connString until it works, the process dies or 30 s pass.
func WaitConnect(t testing.TB, p *Process, connString string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, connString)
		cancel()
		if err == nil {
			require.NoError(t, conn.Close(ctx))
			return
		}
		if p.Exited() {
			t.Fatalf("%s exited before accepting connections (%v):\n%s", p.name, p.err, p.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept connections within 30 s: %v\n%s", p.name, err, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Start starts an empty PostgreSQL 15 (initdb as POSTGRES_USER, as the image does) with the
// rendered postgresql.conf. Local connections are trusted; TCP on 127.0.0.1 takes SCRAM
// passwords for authenticator (PgBouncer) and ecommerce (the backup job).
func Start(t testing.TB) *Server {
	t.Helper()
	initdb := testkit.RequireEngine(t, "initdb")
	postgres := testkit.RequireEngine(t, "postgres")
	psql := testkit.RequireEngine(t, "psql")
	var path []string
	for _, bin := range []string{psql, testkit.RequireEngine(t, "pg_dump"), testkit.RequireEngine(t, "pg_restore")} {
		if dir := filepath.Dir(bin); !slices.Contains(path, dir) {
			path = append(path, dir)
		}
	}
	path = append(path, os.Getenv("PATH"))

	dir := ServerDir(t)
	sockDir := SocketDir(t)

	dataDir := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "--pgdata", dataDir, "--username", Superuser, "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C", "--no-sync")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: RunAs(t)}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "initdb:\n%s", out)
	// The deployed pg_hba.conf (hba_file of the rendered postgresql.conf).
	hbaPath := filepath.Join(dir, "pg_hba.conf")
	WriteFile(t, hbaPath, assets.PostgresHBA(), 0o600)

	s := &Server{Dir: dir, SocketDir: sockDir, Port: testkit.FreePort(t), ConfPath: filepath.Join(dir, "postgresql.conf"),
		Path: strings.Join(path, string(os.PathListSeparator)), psql: psql}
	s.Settings = deployedSettings
	s.Settings.Port = s.Port
	s.Settings.UnixSocketDir = sockDir
	s.Settings.HBAFile = hbaPath
	conf, err := assets.RenderPostgresConf(s.Settings)
	require.NoError(t, err)
	WriteFile(t, s.ConfPath, conf, 0o644)

	// The rendered file as deployed; the command line only keeps the test server off other
	// interfaces and skips fsync.
	proc := StartProcess(t, "postgres", filepath.Join(dir, "postgres.log"), syscall.SIGINT, postgres,
		"-D", dataDir, "-c", "config_file="+s.ConfPath,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	WaitConnect(t, proc, s.ConnString("postgres"))
	// What the image does with POSTGRES_PASSWORD and POSTGRES_DB.
	s.Exec(t, "postgres", "ALTER ROLE "+Superuser+" PASSWORD '"+SuperuserPassword+"'")
	s.Exec(t, "postgres", "CREATE DATABASE "+Database)
	return s
}

// StartLoaded starts a server whose database ecommerce has been set up by the deployed init
// scripts, with or without the dev seed.
func StartLoaded(t testing.TB, includeSeed bool) *Server {
	t.Helper()
	s := Start(t)
	s.RunInitScripts(t, Database, includeSeed)
	s.SyncCredentials(t, Database, AuthenticatorPassword, JWTSecret)
	return s
}

// SyncCredentials runs the deployed credentials-sync.sh (what the database-credentials Job
// runs) against the server: the authenticator's password and the JWT signing key.
func (s *Server) SyncCredentials(t testing.TB, db, authenticatorPassword, jwtSecret string) string {
	t.Helper()
	return s.SyncCredentialsWithReplication(t, db, authenticatorPassword, jwtSecret, "")
}

// SyncCredentialsWithReplication also sets the replicator role's password ("": no replicas).
func (s *Server) SyncCredentialsWithReplication(t testing.TB, db, authenticatorPassword, jwtSecret, replicationPassword string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"owner": SuperuserPassword, "authenticator": authenticatorPassword, "jwt": jwtSecret, "replication": replicationPassword}
	for name, value := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600))
	}
	script := filepath.Join(dir, "credentials-sync.sh")
	require.NoError(t, os.WriteFile(script, []byte(assets.CredentialsSyncScript()), 0o600))
	cmd := exec.Command("sh", script)
	cmd.Env = s.ClientEnv(db,
		"PGPASSWORD_FILE="+filepath.Join(dir, "owner"),
		"AUTHENTICATOR_PASSWORD_FILE="+filepath.Join(dir, "authenticator"),
		"JWT_SECRET_FILE="+filepath.Join(dir, "jwt"),
		"REPLICATION_PASSWORD_FILE="+filepath.Join(dir, "replication"),
		"TIMEOUT_SECONDS=10")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "credentials-sync.sh:\n%s", out)
	return string(out)
}

// ConnString is a libpq connection string over the Unix socket as the superuser.
func (s *Server) ConnString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.SocketDir, s.Port, Superuser, db)
}

// Connect opens a connection (closed when the test ends) as the superuser.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.ConnString(db))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return conn
}

// Exec runs one statement on a short-lived superuser connection.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.ConnString(db))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	require.NoError(t, err, sql)
}

// ClientEnv is the environment of a client program (psql, pg_dump, scripts) that reaches the
// server over its socket as the superuser. Nothing is inherited but PATH, so no PG* variable
// of the machine leaks in.
func (s *Server) ClientEnv(db string, extra ...string) []string {
	return append([]string{
		"PATH=" + s.Path,
		"LC_ALL=C",
		"PGHOST=" + s.SocketDir,
		"PGPORT=" + strconv.Itoa(s.Port),
		"PGUSER=" + Superuser,
		"PGDATABASE=" + db,
	}, extra...)
}

// RunInitScripts runs the deployed init scripts into db as the postgres image runs
// /docker-entrypoint-initdb.d on first start: in file-name order, *.sql with
// `psql -v ON_ERROR_STOP=1 --username $POSTGRES_USER --no-password --no-psqlrc --dbname $POSTGRES_DB`,
// *.sh sourced by bash (ConfigMap files are not executable) in a shell with set -Eeo pipefail.
// It returns everything the scripts printed.
func (s *Server) RunInitScripts(t testing.TB, db string, includeSeed bool) string {
	t.Helper()
	scripts, err := assets.InitScripts(includeSeed)
	require.NoError(t, err)
	initDir := filepath.Join(s.Dir, "initdb-"+db)
	require.NoError(t, os.MkdirAll(initDir, 0o755))
	pwFile := filepath.Join(s.Dir, "authenticator-password")
	require.NoError(t, os.WriteFile(pwFile, []byte(AuthenticatorPassword+"\n"), 0o600))

	names := make([]string, 0, len(scripts))
	for name := range scripts {
		names = append(names, name)
	}
	sort.Strings(names)
	var all strings.Builder
	for _, name := range names {
		path := filepath.Join(initDir, name)
		require.NoError(t, os.WriteFile(path, []byte(scripts[name]), 0o644))
		var cmd *exec.Cmd
		switch filepath.Ext(name) {
		case ".sql":
			cmd = exec.Command(s.psql, "-v", "ON_ERROR_STOP=1", "--username", Superuser,
				"--no-password", "--no-psqlrc", "--dbname", db, "-f", path)
		case ".sh":
			cmd = exec.Command("bash", "-c", `set -Eeo pipefail; . "$1"`, "bash", path)
		default:
			t.Fatalf("init script %s: the image would ignore it (only *.sql and *.sh run here)", name)
		}
		cmd.Env = s.ClientEnv(db,
			"POSTGRES_USER="+Superuser,
			"POSTGRES_DB="+db,
			"AUTHENTICATOR_PASSWORD_FILE="+pwFile)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "init script %s:\n%s", name, out)
		all.WriteString(string(out))
	}
	return all.String()
}

// QueryString runs a query returning one value, read as text.
func QueryString(t testing.TB, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var v string
	require.NoError(t, conn.QueryRow(context.Background(), sql, args...).Scan(&v), sql)
	return v
}

// idsByName maps a key column to the id of each row, e.g. product name -> id.
func idsByName(t testing.TB, conn *pgx.Conn, sql string) map[string]int64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
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
	return idsByName(t, conn, "SELECT name, id FROM shop.products")
}

// UserIDs maps each user's email to its id.
func UserIDs(t testing.TB, conn *pgx.Conn) map[string]int64 {
	return idsByName(t, conn, "SELECT email, id FROM shop.users")
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
