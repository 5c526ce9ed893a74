package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// engineDirs are searched after PATH: Debian installs PostgreSQL's server programs off PATH.
var engineDirs = []string{"/usr/lib/postgresql/15/bin", "/usr/sbin"}

// requireEngine finds a real engine's binary. In CI (CI set) a missing engine fails the run
// with a clear message, since .ci/run installs them; on a laptop the test is skipped with
// that same message.
func requireEngine(t testing.TB, name string) string {
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
	msg := "engine " + name + " not found on PATH or in " + strings.Join(engineDirs, ", ") +
		": run .ci/run (or `make deps`) to install it"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
