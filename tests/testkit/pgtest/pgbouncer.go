package pgtest

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// PgBouncer is a real PgBouncer in front of a test server, on the pgbouncer.ini and the
// userlist the program deploys.
type PgBouncer struct {
	*Process
	Port int
	Ini  string // the rendered pgbouncer.ini
}

// StartPgBouncer renders pgbouncer.ini with the pool sizes of sizes (addresses, ports and
// files are filled in here), writes the authenticator's password into its auth file as the
// program does, and waits until PgBouncer accepts that password.
func StartPgBouncer(t testing.TB, s *Server, name, password string, sizes assets.PgBouncerSettings) *PgBouncer {
	t.Helper()
	bin := testkit.RequireEngine(t, "pgbouncer")
	dir := ServerDir(t)
	settings := sizes
	settings.ListenAddr, settings.ListenPort = "127.0.0.1", testkit.FreePort(t)
	settings.DatabaseName, settings.DatabaseHost, settings.DatabasePort = Database, "127.0.0.1", s.Port
	settings.AuthFile = filepath.Join(dir, "userlist.txt")
	WriteFile(t, settings.AuthFile, components.PgBouncerUserlist("authenticator", password), 0o600)
	ini, err := assets.RenderPgBouncerIni(settings)
	require.NoError(t, err)
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	WriteFile(t, iniPath, ini, 0o644)
	b := &PgBouncer{
		Process: StartProcess(t, name, filepath.Join(dir, "pgbouncer.log"), syscall.SIGTERM, bin, iniPath),
		Port:    settings.ListenPort,
		Ini:     ini,
	}
	WaitConnect(t, b.Process, b.ConnString(password))
	return b
}

// ConnString connects as the authenticator through the pool the way PostgREST does (simple
// protocol: transaction pooling keeps no prepared statements).
func (b *PgBouncer) ConnString(password string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=authenticator password=%s dbname=%s sslmode=disable "+
		"default_query_exec_mode=simple_protocol", b.Port, password, Database)
}
