package pgtest

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

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
