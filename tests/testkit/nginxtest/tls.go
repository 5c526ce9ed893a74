package nginxtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
)

// TLSFiles writes a key pair as tls.crt and tls.key into a folder nginx's unprivileged
// user can read, and returns the folder.
func TLSFiles(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	cert, key := testkit.TLSKeyPair(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.crt"), cert, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.key"), key, 0o644))
	return dir
}
