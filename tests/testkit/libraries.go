package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nssWrapperGlobs are where Debian's libnss-wrapper puts the library (multiarch first).
var nssWrapperGlobs = []string{"/usr/lib/*/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so", "/lib/*/libnss_wrapper.so"}

// RequireFile finds a shared library or data file a suite needs that is not a program on
// PATH, and names the Debian package that installs it when none of the globs match. Like
// RequireEngine, a missing piece fails the run in CI and skips the test elsewhere, so it is
// named up front instead of surfacing as a confusing failure deep inside a test.
func RequireFile(t testing.TB, pkg string, globs ...string) string {
	t.Helper()
	for _, g := range globs {
		matches, _ := filepath.Glob(g)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Size() > 0 {
				return m
			}
		}
	}
	missing(t, pkg, "Debian package "+pkg+" is missing (none of "+strings.Join(globs, ", ")+
		" exists): run `make deps` as root to install it")
	return ""
}

// RequireNSSWrapper proves nss_wrapper works, not only that its file exists: a uid without a
// passwd entry (every container here) must resolve to the name a wrapper file gives it, or
// initdb fails with "could not look up effective user ID". It returns the library's path.
func RequireNSSWrapper(t testing.TB) string {
	t.Helper()
	lib := RequireFile(t, "libnss-wrapper", nssWrapperGlobs...)
	passwd := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(passwd, []byte("nsscheck:x:4242:4242::/:/bin/false\n"), 0o644); err != nil {
		t.Fatalf("nss_wrapper check: %v", err)
	}
	cmd := exec.Command("getent", "passwd", "4242")
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+lib, "NSS_WRAPPER_PASSWD="+passwd, "NSS_WRAPPER_GROUP=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nsscheck:") {
		missing(t, "libnss-wrapper", "libnss-wrapper ("+lib+") does not resolve a uid without a passwd entry "+
			"(getent passwd 4242 under LD_PRELOAD answered "+strings.TrimSpace(string(out))+
			"): reinstall Debian package libnss-wrapper (`make deps` as root)")
	}
	return lib
}

// missing fails the test in CI and skips it elsewhere, reporting the skip for make test's
// summary.
func missing(t testing.TB, what, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	ReportSkip(t, what)
	t.Skip(msg)
}
