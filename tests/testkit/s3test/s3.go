// Package s3test runs a real S3 server (SeaweedFS's weed, built by `make tools`) for the
// tests of the archive's off-site copies, with one bucket and one access key, and gives the
// rclone environment the program's containers use to reach it.
package s3test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// The test server's bucket and keys.
const (
	Bucket    = "ecommerce-archive"
	AccessKey = "s3testaccesskey"
	SecretKey = "s3test-secret-access-key-0123"
)

// Server is one running S3 server of a test.
type Server struct {
	Port int
	cmd  *exec.Cmd
	Log  string
}

// Endpoint is its URL as seen from host (the sandbox maps its own host name onto it).
func (s *Server) Endpoint(host string) string { return fmt.Sprintf("http://%s:%d", host, s.Port) }

// Start runs weed (master, volume, filer and S3 gateway in one process) on free ports with one
// identity, and makes the bucket with rclone, as a storage owner would.
func Start(t testing.TB) *Server {
	t.Helper()
	weed := testkit.ProjectFile(t, ".tools/bin/weed")
	if _, err := os.Stat(weed); err != nil {
		testkit.RequireEngine(t, "weed") // names `make tools` as the fix (fails in CI)
	}
	rclone := testkit.RequireEngine(t, "rclone")
	dir := t.TempDir()
	config := filepath.Join(dir, "s3.json")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(
		`{"identities":[{"name":"archiver","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`,
		AccessKey, SecretKey)), 0o600))
	ports := lowPorts(t, 4)
	s := &Server{Port: ports[3], Log: filepath.Join(dir, "weed.log")}
	logFile, err := os.Create(s.Log)
	require.NoError(t, err)
	s.cmd = exec.Command(weed, "server", "-dir="+dir, "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
		"-master.port="+strconv.Itoa(ports[0]), "-volume.port="+strconv.Itoa(ports[1]), "-filer.port="+strconv.Itoa(ports[2]),
		"-filer", "-s3", "-s3.port="+strconv.Itoa(ports[3]), "-s3.config="+config, "-volume.max=4", "-master.volumeSizeLimitMB=64")
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		_, _ = s.cmd.Process.Wait()
		_ = logFile.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint("127.0.0.1") + "/")
		if err == nil {
			resp.Body.Close()
			if out, err := s.Rclone(t, "127.0.0.1", rclone, "mkdir", "offsite:"+Bucket); err == nil {
				return s
			} else if time.Now().After(deadline) {
				t.Fatalf("make bucket: %s", out)
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.Log)
			t.Fatalf("S3 server not up after 60 s: %v\n%s", err, b)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Env is the rclone environment of remote "offsite" on this server, as the program's
// containers get it (RCLONE_CONFIG_OFFSITE_*), reached under host.
func (s *Server) Env(host string) []string {
	return []string{
		"RCLONE_CONFIG_OFFSITE_TYPE=s3", "RCLONE_CONFIG_OFFSITE_PROVIDER=Other",
		"RCLONE_CONFIG_OFFSITE_ENDPOINT=" + s.Endpoint(host), "RCLONE_CONFIG_OFFSITE_REGION=us-east-1",
		"RCLONE_CONFIG_OFFSITE_FORCE_PATH_STYLE=true",
		"RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID=" + AccessKey, "RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY=" + SecretKey,
	}
}

// Rclone runs rclone against this server.
func (s *Server) Rclone(t testing.TB, host, rclone string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(rclone, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, s.Env(host)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Objects lists the keys under a prefix of the bucket.
func (s *Server) Objects(t testing.TB, prefix string) []string {
	t.Helper()
	out, err := s.Rclone(t, "127.0.0.1", testkit.RequireEngine(t, "rclone"), "lsf", "-q", "-R", "--files-only", "offsite:"+Bucket+"/"+prefix)
	require.NoError(t, err, out)
	return strings.Fields(out)
}

// Decrypted lists the files under a prefix of the bucket as the program's rclone containers
// read them: through the crypt remote the deployed offsite-crypt.sh sets up with key (the
// bucket itself holds only encrypted names).
func (s *Server) Decrypted(t testing.TB, prefix, key string) []string {
	t.Helper()
	dir := t.TempDir()
	keyFile, script := filepath.Join(dir, "key"), filepath.Join(dir, "offsite-crypt.sh")
	require.NoError(t, os.WriteFile(keyFile, []byte(key), 0o600))
	require.NoError(t, os.WriteFile(script, []byte(assets.File("offsite-crypt.sh")), 0o600))
	cmd := exec.Command("sh", "-c", `. "$1" && seal && rclone lsf -q -R --files-only sealed:`, "sh", script)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "REMOTE=offsite:" + Bucket + "/" + prefix,
		"ENCRYPTION_KEY_FILE=" + keyFile}, s.Env("127.0.0.1")...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.Fields(string(out))
}

// lowPorts are free ports below 50000: weed listens on each port plus 10000 for gRPC.
func lowPorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for p := 20000 + os.Getpid()%10000; len(ports) < n && p < 40000; p += 7 {
		if free(p) && free(p+10000) {
			ports = append(ports, p)
		}
	}
	require.Len(t, ports, n)
	return ports
}

func free(port int) bool {
	l, err := net.Listen("tcp", "0.0.0.0:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
