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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
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

// The jobs' and exporters' own login roles (bootstrap.sql) and the test passwords
// credentials-sync.sh gives them, as the database-credentials Job does.
const (
	BackupRole            = "shop_backup"
	ReleaseUnpaidRole     = "shop_release_unpaid"
	MonitorRole           = "shop_monitor"
	BackupPassword        = "backup-role-test-password"
	ReleaseUnpaidPassword = "release-unpaid-role-test-password"
	MonitorPassword       = "monitor-role-test-password"
)

// RolePasswords are the job roles' test passwords by role.
var RolePasswords = map[string]string{BackupRole: BackupPassword, ReleaseUnpaidRole: ReleaseUnpaidPassword, MonitorRole: MonitorPassword}

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
	DataDir   string
	Proc      *Process
	psql      string
}

// Durable settings run the server as deployed: fsync, full-page writes and synchronous
// commit on (Start turns them off for speed). Adjust changes the rendered settings first.
type Durable struct {
	Adjust func(*assets.PostgresSettings)
	NoSeed bool     // the init scripts without the dev seed (a benchmark brings its own data)
	Args   []string // extra server options after the rendered file (e.g. a profiler's -c shared_preload_libraries=...)
}

// Start starts an empty PostgreSQL 15 (initdb as POSTGRES_USER, as the image does) with the
// rendered postgresql.conf. Local connections are trusted; TCP on 127.0.0.1 takes SCRAM
// passwords for authenticator (PgBouncer) and ecommerce (the backup job).
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// StartDurable starts a loaded server (init scripts with the dev seed, credentials) exactly
// as deployed: fsync and synchronous commit on, for the durability tests.
func StartDurable(t testing.TB, d Durable) *Server {
	t.Helper()
	s := start(t, &d)
	s.ApplySchema(t, Database, !d.NoSeed)
	s.SyncCredentials(t, Database, AuthenticatorPassword, JWTSecret)
	return s
}

func start(t testing.TB, durable *Durable) *Server {
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
		Path: strings.Join(path, string(os.PathListSeparator)), DataDir: dataDir, psql: psql}
	s.Settings = deployedSettings
	if durable != nil && durable.Adjust != nil {
		durable.Adjust(&s.Settings)
	}
	s.Settings.Port = s.Port
	s.Settings.UnixSocketDir = sockDir
	s.Settings.HBAFile = hbaPath
	conf, err := assets.RenderPostgresConf(s.Settings)
	require.NoError(t, err)
	WriteFile(t, s.ConfPath, conf, 0o644)

	// The rendered file as deployed; the command line only keeps the test server off other
	// interfaces and, unless durable, skips fsync.
	args := []string{"-D", dataDir, "-c", "config_file=" + s.ConfPath, "-c", "listen_addresses=127.0.0.1"}
	if durable == nil {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	} else {
		args = append(args, durable.Args...)
	}
	s.Proc = StartProcess(t, "postgres", filepath.Join(dir, "postgres.log"), syscall.SIGINT, postgres, args...)
	WaitConnect(t, s.Proc, s.ConnString("postgres"))
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
	s.ApplySchema(t, Database, includeSeed)
	s.SyncCredentials(t, Database, AuthenticatorPassword, JWTSecret)
	return s
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

// ApplySchema brings db to the program's schema exactly as the database-migrate Job does, with
// the deployed files and command line: migrate-bootstrap.sh as the superuser over TCP (SCRAM,
// as in a pod), golang-migrate's CLI (the version the image pins, built by `make tools`) with
// MigrateArgs as the migrator through the password file the bootstrap wrote, then
// migrate-verify.sh (with the dev seed when includeSeed). It returns everything they printed.
func (s *Server) ApplySchema(t testing.TB, db string, includeSeed bool) string {
	t.Helper()
	out, err := s.RunMigrationJob(t, db, includeSeed)
	require.NoError(t, err, "database-migrate run:\n%s", out)
	return out
}

// RunMigrationJob is ApplySchema that returns a failed run's error instead of failing the
// test (the upgrade tests expect some runs to fail).
func (s *Server) RunMigrationJob(t testing.TB, db string, includeSeed bool) (string, error) {
	t.Helper()
	return s.runMigrations(t, db, includeSeed, 0)
}

// MigrateTo brings db to schema version (golang-migrate's `goto`, not the Job's `up`): an
// older schema, for the tests of what a later run does with it. No verify step.
func (s *Server) MigrateTo(t testing.TB, db string, version int) {
	t.Helper()
	out, err := s.runMigrations(t, db, false, version)
	require.NoError(t, err, "migrate to %d:\n%s", version, out)
}

// runMigrations runs the Job's steps; a version > 0 stops at it (goto) and skips verify.
func (s *Server) runMigrations(t testing.TB, db string, includeSeed bool, target int) (string, error) {
	t.Helper()
	dir := filepath.Join(s.Dir, "migrate-"+db)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "migrations"), 0o755))
	files, newest, err := assets.Migrations()
	require.NoError(t, err)
	files["bootstrap.sql"] = assets.BootstrapSQL()
	files["migrate-bootstrap.sh"] = assets.File("migrate-bootstrap.sh")
	files["migrate-verify.sh"] = assets.File("migrate-verify.sh")
	files["seed-dev.sql"] = assets.DevSeedSQL()
	for name, text := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "migrations", name), []byte(text), 0o644))
	}
	superuserPW := filepath.Join(dir, "superuser-password")
	require.NoError(t, os.WriteFile(superuserPW, []byte(SuperuserPassword+"\n"), 0o600))
	passFile := filepath.Join(dir, "pgpass")
	scripts := filepath.Join(dir, "migrations")
	var all strings.Builder
	run := func(cmd *exec.Cmd) error {
		out, err := cmd.CombinedOutput()
		all.Write(out)
		return err
	}
	tcp := func(user string, extra ...string) []string {
		return append([]string{"PATH=" + s.Path, "LC_ALL=C", "PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(s.Port), "PGUSER=" + user, "PGDATABASE=" + db}, extra...)
	}
	bootstrap := exec.Command("sh", filepath.Join(scripts, "migrate-bootstrap.sh"))
	bootstrap.Env = tcp(Superuser, "PGPASSWORD_FILE="+superuserPW, "BOOTSTRAP_SQL="+filepath.Join(scripts, "bootstrap.sql"),
		"MIGRATOR_PASSFILE="+passFile, "TIMEOUT_SECONDS=10", "MIGRATOR_VALID_SECONDS=1200")
	if err := run(bootstrap); err != nil {
		return all.String(), fmt.Errorf("migrate-bootstrap.sh: %w", err)
	}
	args := assets.MigrateArgs(scripts)
	if target > 0 {
		args = append(args[:len(args)-1], "goto", strconv.Itoa(target))
	}
	migrate := exec.Command(testkit.RequireTool(t, "migrate"), args...)
	migrate.Env = tcp("migrator", "PGPASSFILE="+passFile)
	if err := run(migrate); err != nil {
		return all.String(), fmt.Errorf("migrate: %w", err)
	}
	if target > 0 {
		return all.String(), nil
	}
	verifyEnv := tcp("migrator", "PGPASSFILE="+passFile, "EXPECTED_VERSION="+strconv.Itoa(newest))
	if includeSeed {
		verifyEnv = append(verifyEnv, "SEED_SQL="+filepath.Join(scripts, "seed-dev.sql"))
	}
	verify := exec.Command("sh", filepath.Join(scripts, "migrate-verify.sh"))
	verify.Env = verifyEnv
	if err := run(verify); err != nil {
		return all.String(), fmt.Errorf("migrate-verify.sh: %w", err)
	}
	return all.String(), nil
}

// MigratorPassword is the migrator's password the last migration run of db wrote into its
// password file (what the Job's memory volume holds while it runs).
func (s *Server) MigratorPassword(t testing.TB, db string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.Dir, "migrate-"+db, "pgpass"))
	require.NoError(t, err)
	line := strings.TrimSpace(string(raw))
	return line[strings.LastIndex(line, ":")+1:]
}

// Seeded is a server with the deployed init scripts and the demo data loaded, and a
// connection to the shop's database as its owner: where most engine tests start.
func Seeded(t testing.TB) (*Server, *pgx.Conn) {
	t.Helper()
	s := StartLoaded(t, true)
	return s, s.Connect(t, Database)
}
