// Package nginxtest runs the real nginx on the nginx.conf the program renders (stack
// defaults, paths in a temporary folder), with a stand-in upstream and a syslog listener
// standing in for the log collector, for the web, attack and browser tests.
package nginxtest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// The real nginx (Debian's 1.22 here; the image runs 1.27) runs the nginx.conf the program
// deploys. When the tests run as root, nginx runs as nobody, like the container's uid 101:
// that proves nginx writes nothing outside RuntimeDir. Its access log goes to stdout and to a
// syslog listener standing in for the log collector sidecar.

const (
	unprivilegedUID = 65534 // nobody
	unprivilegedGID = 65534 // nogroup
)

// DeployedSettings are the values the program renders nginx.conf with (stack
// defaults), except for the paths, which tests point into a temporary folder.
func DeployedSettings() assets.NginxSettings {
	return assets.NginxSettings{
		ListenPort:             8080,
		StatusPort:             8081,
		BackendHost:            "backend-service",
		BackendPort:            8080,
		RateLimitPerSecond:     20,
		RateLimitBurst:         40,
		LoginRatePerMinute:     10,
		UpstreamTimeoutSeconds: 30,
		Color:                  "blue",
		ReleaseDir:             "/etc/nginx/release",
		HTMLRoot:               "/usr/share/nginx/html",
		AccessLogSyslog:        "127.0.0.1:5140",
		RuntimeDir:             "/tmp",
	}
}

// Dirs is one nginx's private folder tree.
type Dirs struct {
	Root, HTML, Run, Release, Conf string
}

// Prepare points the settings' paths into a fresh temporary folder, copies the
// dashboard there, renders nginx.conf and, when running as root, hands the tree to the
// unprivileged user nginx will run as.
func Prepare(t testing.TB, s *assets.NginxSettings) Dirs {
	t.Helper()
	root := t.TempDir()
	d := Dirs{
		Root: root,
		HTML: filepath.Join(root, "html"),
		Run:  filepath.Join(root, "run"),
		// The pod's labels as the downward API mounts them.
		Release: filepath.Join(root, "release"),
		Conf:    filepath.Join(root, "nginx.conf"),
	}
	for _, dir := range []string{d.HTML, d.Run, d.Release} {
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	WriteRelease(t, d, s.Color, "1.0.0")
	dashboard, err := assets.Files("dashboard")
	require.NoError(t, err)
	for name, content := range dashboard {
		require.NoError(t, os.WriteFile(filepath.Join(d.HTML, name), []byte(content), 0o644))
	}
	s.HTMLRoot, s.RuntimeDir, s.ReleaseDir = d.HTML, d.Run, d.Release
	conf, err := assets.RenderNginxConf(*s)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(d.Conf, []byte(conf), 0o644))

	if os.Geteuid() == 0 {
		// t.TempDir's parent is private to root: let nobody through, and own the tree.
		require.NoError(t, os.Chmod(filepath.Dir(root), 0o755))
		require.NoError(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, unprivilegedUID, unprivilegedGID)
		}))
	}
	return d
}

// WriteRelease writes the color and version label files the downward API mounts.
func WriteRelease(t testing.TB, d Dirs, color, version string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(d.Release, "color"), []byte(color), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(d.Release, "version"), []byte(version), 0o644))
}

// Command builds an nginx command line that logs to stderr and, as root, runs as
// nobody (the conf has no `user` directive, as in the unprivileged image).
func Command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"-e", "stderr"}, args...)...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: unprivilegedUID, Gid: unprivilegedGID},
		}
	}
	return cmd
}

// stdio is testkit.OwnedStdio for an nginx command, as the uid it runs as.
func stdio(t testing.TB, cmd *exec.Cmd, w io.Writer) (wait func()) {
	t.Helper()
	uid, gid := int64(os.Geteuid()), int64(os.Getegid())
	if cred := cmd.SysProcAttr; cred != nil && cred.Credential != nil {
		uid, gid = int64(cred.Credential.Uid), int64(cred.Credential.Gid)
	}
	return testkit.OwnedStdio(t, cmd, w, uid, gid)
}

// Output runs a short nginx command (nginx -t) and returns what it printed.
func Output(t testing.TB, cmd *exec.Cmd) (string, error) {
	t.Helper()
	var out testkit.SyncBuffer
	done := stdio(t, cmd, &out)
	err := cmd.Run()
	done()
	return out.String(), err
}

// Server is a running nginx.
type Server struct {
	Base      string // http://127.0.0.1:<ListenPort>
	StatusURL string // http://127.0.0.1:<StatusPort>/stub_status
	Dirs      Dirs
	Syslog    *Syslog // stands in for the log collector's syslog input
	Stderr    *testkit.SyncBuffer
}

// Start renders the settings (ports chosen here), starts nginx in the foreground and
// waits until it answers /health. It is stopped gracefully (SIGQUIT, as the pod's
// preStop `nginx -s quit`) when the test ends.
func Start(t testing.TB, s assets.NginxSettings) *Server {
	t.Helper()
	bin := testkit.RequireEngine(t, "nginx")
	s.ListenPort = testkit.FreePort(t)
	s.StatusPort = testkit.FreePort(t)
	syslog := listenSyslog(t)
	s.AccessLogSyslog = syslog.Addr
	dirs := Prepare(t, &s)

	stderr := &testkit.SyncBuffer{}
	cmd := Command(bin, "-c", dirs.Conf, "-g", "daemon off;")
	stdioDone := stdio(t, cmd, stderr)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); stdioDone(); exited <- err }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx stderr:\n%s", stderr.String())
		}
	})

	srv := &Server{
		Syslog:    syslog,
		Base:      fmt.Sprintf("http://127.0.0.1:%d", s.ListenPort),
		StatusURL: fmt.Sprintf("http://127.0.0.1:%d/stub_status", s.StatusPort),
		Dirs:      dirs,
		Stderr:    stderr,
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			require.FailNowf(t, "nginx exited", "%v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get(srv.Base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv
			}
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "nginx did not answer /health", "last error %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
