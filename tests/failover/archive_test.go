package failover

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// The WAL archiver across a failover under load. archive.sh streams through
// database-service, as the archiver pod does, and takes a base backup there. The leader is
// killed. pg_receivewal reconnects through the same Service to the new leader, on its copy of
// the permanent slot, and follows the timeline switch. A recovery from the archive alone
// (recovery-bootstrap.sh: the base backup from before the kill, the WAL of both timelines)
// then holds every acknowledged order.
func TestFailoverArchiverFollowsTheNewLeader(t *testing.T) {
	c := startCluster(t)
	old := c.waitLeader(nil, 10*time.Second)
	load, service := startShop(c, old)
	waitSlot(t, 30*time.Second, c.members...)
	archiver := pgtest.NewArchiver(t, c.binDir+string(os.PathListSeparator)+os.Getenv("PATH"), service.Port, replicationPass)
	archiver.Receive(t, mustConnect(t, old))
	archiver.MustRun(t, "basebackup")
	steady(t, load)

	killed := time.Now()
	c.kill(old)
	// The archive as it stood when the leader died: what a recovery of the archive alone
	// would hold had every member died at that moment (the archiver is outside the quorum).
	atKill := snapshotArchive(t, archiver.Dir)
	leader := c.waitLeader(old, 60*time.Second)
	recovered(t, load, time.Now(), 20, 60*time.Second)
	admin := mustConnect(t, leader)
	archiver.WaitStreaming(t, admin, 60*time.Second)
	resumed := time.Since(killed)
	o := checkNoLoss(t, load, leader, killed)
	require.False(t, o.firstAfter.IsZero(), "no order acknowledged after the kill")
	archiver.WaitCaughtUp(t, admin)
	archiver.Stop(t)
	wal, err := os.ReadDir(filepath.Join(archiver.Dir, "wal"))
	require.NoError(t, err)
	var files []string
	for _, f := range wal {
		files = append(files, f.Name())
	}
	assert.Contains(t, files, "00000002.history", "the archive holds the new timeline's history")

	restored := recoverArchive(t, c, archiver.Dir)
	missing, err := missingOrders(restored, o.acknowledged)
	require.NoError(t, err)
	assert.Empty(t, missing, "acknowledged orders missing from the recovery of the archive")
	t.Logf("failover figure: the archiver streamed from the new leader %s %s after the kill of %s; %d orders acknowledged across the failover, 0 missing from the archive's recovery; archive WAL: %s",
		leader.Name, resumed.Round(time.Millisecond), old.Name, len(o.acknowledged), strings.Join(files, " "))

	// Every member lost at the kill: the archive alone loses at most what the archiver had
	// not flushed yet, orders acknowledged in the last moments (pg_receivewal flushes each
	// write as it arrives; quorum commit never waits for it).
	before := ackedBefore(load, killed)
	lost, err := missingOrders(recoverArchive(t, c, atKill), ids(before))
	require.NoError(t, err)
	var lostBy []time.Duration
	for _, r := range before {
		if slices.Contains(lost, r.id) {
			lostBy = append(lostBy, killed.Sub(r.end).Round(time.Millisecond))
			assert.Less(t, killed.Sub(r.end), time.Second, "order %d, acknowledged %s before the kill, is not in the archive", r.id, killed.Sub(r.end))
		}
	}
	t.Logf("failover figure: archive alone at the kill: %d of %d orders acknowledged before it missing (acknowledged %v before the kill)", len(lost), len(before), lostBy)
}

// snapshotArchive copies the archive as it is now, as the archiver's uid, and returns the copy.
func snapshotArchive(t *testing.T, archive string) string {
	t.Helper()
	dir := filepath.Join(pgtest.ServerDir(t), "archive")
	cmd := exec.Command("cp", "-a", archive, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgtest.RunAs(t)}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "copy of the archive: %s", out)
	return dir
}

// ackedBefore are the orders acknowledged at or before a moment.
func ackedBefore(l *orderLoad, at time.Time) []request {
	var out []request
	for _, r := range l.snapshot() {
		if r.err == nil && !r.end.After(at) {
			out = append(out, r)
		}
	}
	return out
}

func ids(rs []request) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.id
	}
	return out
}

// mustConnect is connect that requires success; the connection closes with the test.
func mustConnect(t *testing.T, m *member) *pgx.Conn {
	t.Helper()
	conn, err := connect(m, "postgres")
	require.NoError(t, err, m.Name)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// recoverArchive runs the deployed recovery-bootstrap.sh over the archive (target latest)
// into a fresh data directory and starts PostgreSQL there until it has promoted. The base
// backup carries a member's postgresql.conf as Patroni wrote it; the port, socket and
// hba_file (Patroni writes absolute paths) are the recovered server's own, as a pod's would
// be.
func recoverArchive(t *testing.T, c *shopCluster, archive string) *member {
	t.Helper()
	r := &member{Name: "recovered", Dir: pgtest.ServerDir(t), SocketDir: pgtest.SocketDir(t), PGPort: testkit.FreePort(t)}
	r.DataDir = filepath.Join(r.Dir, "pgdata")
	out, err := pgtest.RunRecoveryBootstrap(t, c.binDir+string(os.PathListSeparator)+os.Getenv("PATH"), r.DataDir, archive, "latest")
	require.NoError(t, err, "recovery-bootstrap.sh:\n%s", out)
	proc := pgtest.StartProcess(t, r.Name, filepath.Join(r.Dir, "postgres.log"), syscall.SIGINT, filepath.Join(c.binDir, "postgres"),
		"-D", r.DataDir, "-c", fmt.Sprintf("port=%d", r.PGPort), "-c", "unix_socket_directories="+r.SocketDir,
		"-c", "listen_addresses=", "-c", "hba_file="+filepath.Join(r.DataDir, "pg_hba.conf"),
		"-c", "synchronous_standby_names=", "-c", "archive_mode=off")
	connString := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", r.SocketDir, r.PGPort, pgtest.Superuser)
	pgtest.WaitConnect(t, proc, connString)
	conn, err := pgx.Connect(context.Background(), connString)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	pgtest.WaitPromoted(t, conn, proc, 120*time.Second)
	return r
}
