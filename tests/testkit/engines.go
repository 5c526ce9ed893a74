package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// engineDirs are searched after PATH: Debian installs PostgreSQL's server programs off PATH.
var engineDirs = []string{"/usr/lib/postgresql/15/bin", "/usr/sbin"}

// RequireEngine finds a real engine's binary. In CI (CI set) a missing engine fails the run
// with a clear message, since .ci/run installs them; on a laptop the test is skipped with
// that same message.
func RequireEngine(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range engineDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	missing(t, name, "engine "+name+" not found on PATH or in "+strings.Join(engineDirs, ", ")+
		": run `make deps` as root to install it")
	return ""
}

// RequireTool finds a binary `make tools` builds into .tools/bin (promtool, the pinned
// exporters), or one on PATH; missing, it fails in CI and skips elsewhere, naming the fix.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p := ProjectFile(t, ".tools/bin/"+name); isFile(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	missing(t, name, "tool "+name+" not found in .tools/bin or on PATH: run `make tools`")
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// ReportSkip notes a skipped test and the engine it lacked in the file named by
// ECOMMERCE_TEST_REPORT, so `make test` can end with a summary nobody misses
// (scripts/test-summary.sh); skips are quiet in `go test`'s own output.
func ReportSkip(t testing.TB, engine string) {
	path := os.Getenv("ECOMMERCE_TEST_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("test report %s: %v", path, err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "skipped\t%s\t%s\n", t.Name(), engine)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (for a server a test
// starts).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}
