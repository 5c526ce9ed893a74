package pgtest

// The archiver pod's deployed archive.sh (pg_receivewal and verified base backups) run
// against whatever answers on one port: a primary of the engine tests, or the failover
// tests' database-service in front of the Patroni leader. And recovery-bootstrap.sh, the
// recovering primary's init container, over what it archived.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/database"
	"ecommerce-platform/tests/testkit"
)

// Archiver runs archive.sh as the archiver pod does.
type Archiver struct {
	Dir    string // the archive (the archiver's claim)
	script string
	path   string // PATH: pg_verifybackup's folder, then the client programs'
	port   int
	proc   *Process
}

// NewArchiver writes archive.sh, archive-metrics.sh beside it (as deployed) and the
// replication password, and makes an empty archive; clientPath is the PATH of the primary's
// client programs (pg_receivewal, pg_basebackup), port where the primary answers.
func NewArchiver(t *testing.T, clientPath string, port int, replicationPassword string) *Archiver {
	t.Helper()
	home := ServerDir(t)
	a := &Archiver{Dir: filepath.Join(home, "archive"), script: filepath.Join(home, "archive.sh"), port: port,
		path: filepath.Dir(testkit.RequireEngine(t, "pg_verifybackup")) + ":" + clientPath}
	WriteFile(t, a.script, assets.File("archive.sh"), 0o644)
	WriteFile(t, filepath.Join(home, "archive-metrics.sh"), assets.File("archive-metrics.sh"), 0o644)
	WriteFile(t, filepath.Join(home, "replication-password"), replicationPassword+"\n", 0o600)
	cmd := exec.Command("mkdir", "-p", a.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: RunAs(t)}
	require.NoError(t, cmd.Run())
	return a
}

// Env is the archiver containers' environment (see archive.sh's header) plus extra.
func (a *Archiver) Env(extra ...string) []string {
	return append([]string{
		"PATH=" + a.path,
		"PRIMARY_HOST=127.0.0.1", fmt.Sprintf("PRIMARY_PORT=%d", a.port), "REPLICATION_USER=replicator",
		"PGPASSWORD_FILE=" + filepath.Join(filepath.Dir(a.script), "replication-password"),
		"ARCHIVE_DIR=" + a.Dir, "SLOT=" + database.ArchiverSlot, "BASEBACKUP_KEEP=2",
	}, extra...)
}

// Receive starts `archive.sh receive` (pg_receivewal) and waits until the primary behind the
// port (asked through admin) sees it streaming.
func (a *Archiver) Receive(t *testing.T, admin *pgx.Conn) {
	t.Helper()
	a.proc = StartProcessEnv(t, "archiver", filepath.Join(filepath.Dir(a.script), "archiver.log"), syscall.SIGTERM,
		a.Env(), "sh", a.script, "receive")
	a.WaitStreaming(t, admin, 20*time.Second)
}

// WaitStreaming waits until the primary asked through admin sees the archiver streaming.
func (a *Archiver) WaitStreaming(t *testing.T, admin *pgx.Conn, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		var n int
		require.NoError(t, admin.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", database.ArchiverSlot).Scan(&n))
		if n == 1 {
			return
		}
		require.False(t, time.Now().After(deadline), "the archiver is not streaming after %s:\n%s", within, a.Log())
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitCaughtUp waits until the archiver has flushed everything the primary asked through
// admin has written.
func (a *Archiver) WaitCaughtUp(t *testing.T, admin *pgx.Conn) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		var behind int64
		require.NoError(t, admin.QueryRow(context.Background(),
			"SELECT pg_current_wal_lsn() - flush_lsn FROM pg_stat_replication WHERE application_name = $1", database.ArchiverSlot).Scan(&behind))
		if behind <= 0 {
			return
		}
		require.False(t, time.Now().After(deadline), "the archiver is %d bytes behind after 20 s", behind)
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is what `archive.sh receive` printed so far.
func (a *Archiver) Log() string {
	if a.proc == nil {
		return "(not started)"
	}
	return a.proc.Log()
}

// Stop stops pg_receivewal as the kubelet does (SIGTERM) and waits.
func (a *Archiver) Stop(t *testing.T) {
	t.Helper()
	_ = a.proc.Cmd.Process.Signal(syscall.SIGTERM)
	<-a.proc.Done
}

// Run runs one archive.sh command to its end and returns what it printed.
func (a *Archiver) Run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{a.script}, args...)...)
	cmd.Env = a.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: RunAs(t)}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustRun is Run that requires success.
func (a *Archiver) MustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := a.Run(t, args...)
	require.NoError(t, err, "archive.sh %s:\n%s", strings.Join(args, " "), out)
	return out
}

// MustRunScript runs another deployed script beside archive.sh (e.g. archive-metrics.sh)
// with the archiver's environment plus extra.
func (a *Archiver) MustRunScript(t *testing.T, script string, extra ...string) string {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(filepath.Dir(a.script), script))
	cmd.Env = a.Env(extra...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s:\n%s", script, out)
	return string(out)
}

// Backups lists the archive's base backups by name (verified ones and .failed ones).
func (a *Archiver) Backups(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(a.Dir, "base"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// RunRecoveryBootstrap runs the deployed recovery-bootstrap.sh as the postgres container's
// uid would, into the data directory data (beside which the script is written), from
// restoreDir (base/ and wal/) to target; clientPath is the PATH of the server's programs.
func RunRecoveryBootstrap(t *testing.T, clientPath, data, restoreDir, target string) (string, error) {
	t.Helper()
	script := filepath.Join(filepath.Dir(data), "recovery-bootstrap.sh")
	WriteFile(t, script, assets.File("recovery-bootstrap.sh"), 0o644)
	cmd := exec.Command("sh", script)
	cmd.Env = []string{"PATH=" + filepath.Dir(testkit.RequireEngine(t, "pg_verifybackup")) + ":" + clientPath,
		"PGDATA=" + data, "RESTORE_DIR=" + restoreDir, "RECOVERY_TARGET=" + target}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: RunAs(t)}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// WaitPromoted waits until the server behind conn has ended recovery.
func WaitPromoted(t *testing.T, conn *pgx.Conn, proc *Process, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		var inRecovery bool
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		if !inRecovery {
			return
		}
		require.False(t, time.Now().After(deadline), "still in recovery after %s:\n%s", within, proc.Log())
		time.Sleep(50 * time.Millisecond)
	}
}
