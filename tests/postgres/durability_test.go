package postgres

// Durability on real PostgreSQL 15 with the deployed configs and scripts (fsync and
// synchronous commit on): continuous WAL archiving (archive.sh receive), verified base backups
// (archive.sh basebackup), point-in-time recovery (recovery-bootstrap.sh), quorum commit
// (prod's synchronous_standby_names) and the loss of the primary.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/s3test"
)

// archivedPrimary is a durable primary with the replicator role and a streaming archiver
// holding one verified base backup.
func archivedPrimary(t *testing.T, adjust func(*assets.PostgresSettings)) (*pgtest.Server, *pgArchiver) {
	t.Helper()
	primary := pgtest.StartDurable(t, pgtest.Durable{Adjust: adjust})
	primary.SyncCredentialsWithReplication(t, pgtest.Database, pgtest.AuthenticatorPassword, pgtest.JWTSecret, pgReplicationPassword)
	archiver := newArchiver(t, primary)
	archiver.Receive(t)
	archiver.MustRun(t, "basebackup")
	return primary, archiver
}

// TestPITRExactlyTheOrdersBeforeTheTarget: orders placed continuously through PgBouncer;
// recovering a fresh data directory to a moment T brings back exactly the orders committed
// before T, none after; recovering to latest brings back every acknowledged order.
func TestPITRExactlyTheOrdersBeforeTheTarget(t *testing.T) {
	primary, archiver := archivedPrimary(t, nil)
	user, products := shopForLoad(t, primary)
	load := startOrders(t, loadPool(t, primary), 4, user, products)
	time.Sleep(1500 * time.Millisecond)
	target := load.Mark()
	time.Sleep(1500 * time.Millisecond)
	acked := load.Stop()
	// The segment holding the target is completed, as the next segment switch would: the open
	// one (.partial) never goes off site.
	primary.Exec(t, "postgres", "SELECT pg_switch_wal()")
	archiver.WaitCaughtUp(t) // asynchronous here: the archive may trail the last commits by milliseconds
	archiver.Stop(t)
	before, after := ackedBefore(acked, target)
	require.NotEmpty(t, before)
	require.NotEmpty(t, after)
	t.Logf("PITR: %d orders acknowledged before %s, %d after", len(before), target.Format(time.RFC3339), len(after))

	t.Run("to a time: exactly the orders committed before it", func(t *testing.T) {
		r := recoverInto(t, primary, archiver.Dir, target.UTC().Format(time.RFC3339))
		assert.Equal(t, before, r.OrderIDs(t))
	})
	t.Run("to latest: every acknowledged order", func(t *testing.T) {
		r := recoverInto(t, primary, archiver.Dir, "latest")
		all := append(append([]int64{}, before...), after...)
		assert.Empty(t, missing(all, r.OrderIDs(t)), "acknowledged orders missing after recovery to latest")
	})
	t.Run("bad targets fail naming them, and an existing data directory is never overwritten", func(t *testing.T) {
		data := filepath.Join(pgtest.ServerDir(t), "pgdata")
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		out, err := runRecoveryBootstrap(t, primary, data, archiver.Dir, future)
		require.Error(t, err)
		assert.Contains(t, out, "databaseRecoveryTarget "+future+" is in the future")
		early := "2020-01-01T00:00:00Z"
		out, err = runRecoveryBootstrap(t, primary, data, archiver.Dir, early)
		require.Error(t, err)
		assert.Contains(t, out, "databaseRecoveryTarget "+early+" is before the oldest base backup in the archive")
		out, err = runRecoveryBootstrap(t, primary, data, archiver.Dir, "yesterday noon-ish")
		require.Error(t, err)
		assert.Contains(t, out, "is not an RFC 3339 time")
		out, err = runRecoveryBootstrap(t, primary, primary.DataDir, archiver.Dir, "latest")
		require.NoError(t, err, out)
		assert.Contains(t, out, "already holds a database; not recovering")
	})
	t.Run("from the bucket alone (local archive deleted): exactly the orders before the target", func(t *testing.T) {
		store := s3test.Start(t)
		remote := "offsite:" + s3test.Bucket + "/prod"
		out := runOffsiteScript(t, store, "offsite-sync", []string{"ARCHIVE_DIR=" + archiver.Dir, "REMOTE=" + remote}, "once")
		assert.Contains(t, out, "archive copied to "+remote)
		offsite := strings.Join(store.Decrypted(t, "prod", testkit.TestSecrets["databaseOffsiteEncryptionKey"]), "\n")
		assert.Contains(t, offsite, "/backup_manifest", "a verified base backup is off site")
		assert.Contains(t, offsite, "wal/", "the WAL is off site")
		assert.NotContains(t, strings.Join(store.Objects(t, "prod"), "\n"), "backup_manifest", "names are encrypted in the bucket")
		require.NoError(t, os.RemoveAll(archiver.Dir))

		restore := filepath.Join(pgtest.ServerDir(t), "restore")
		out = runOffsiteScript(t, store, "recovery-fetch", []string{"PGDATA=" + filepath.Join(restore, "none"), "RESTORE_DIR=" + restore, "REMOTE=" + remote})
		assert.Contains(t, out, "archive copied from "+remote)
		r := recoverInto(t, primary, restore, target.UTC().Format(time.RFC3339))
		assert.Equal(t, before, r.OrderIDs(t))

		cmd := offsiteCommand(t, store, "recovery-fetch", []string{"PGDATA=" + filepath.Join(restore, "none"),
			"RESTORE_DIR=" + t.TempDir(), "REMOTE=offsite:no-such-bucket/prod"})
		failed, err := cmd.CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(failed), "cannot read the archive databaseRecoverFrom at offsite:no-such-bucket/prod")

		// Another key reads nothing: the fetch fails naming the key, and lays out no backup.
		otherKey := filepath.Join(t.TempDir(), "other-key")
		require.NoError(t, os.WriteFile(otherKey, []byte("another-stacks-key-of-at-least-32-characters"), 0o600))
		elsewhere := t.TempDir()
		failed, err = offsiteCommand(t, store, "recovery-fetch", []string{"PGDATA=" + filepath.Join(restore, "none"),
			"RESTORE_DIR=" + elsewhere, "REMOTE=" + remote, "ENCRYPTION_KEY_FILE=" + otherKey}).CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(failed), "the archive databaseRecoverFrom at "+remote+" holds no base backup readable with databaseOffsiteEncryptionKey")
	})
}

// TestPITRBackupThatFailsVerificationNeverCounts: a base backup with one flipped byte fails
// pg_verifybackup and is kept aside as .failed; retention and recovery use the one before.
// A verified backup that rots later is skipped by the recovery too.
func TestPITRBackupThatFailsVerificationNeverCounts(t *testing.T) {
	primary, archiver := archivedPrimary(t, nil)
	first := archiver.Backups(t)
	require.Len(t, first, 1)

	printed := strings.Split(strings.TrimSpace(archiver.MustRun(t, "take")), "\n")
	candidate := printed[len(printed)-1] // the log goes to stderr, the path last to stdout
	flipByte(t, filepath.Join(candidate, "global", "pg_control"))
	out, err := archiver.Run(t, "keep", candidate)
	require.Error(t, err)
	assert.Contains(t, out, "failed pg_verifybackup")
	backups := archiver.Backups(t)
	require.Len(t, backups, 2)
	assert.Equal(t, first[0], backups[0], "the verified backup stays")
	assert.True(t, strings.HasSuffix(backups[1], ".failed"), "the bad one is set aside: %v", backups)

	primary.Exec(t, pgtest.Database, "INSERT INTO shop.products (name, price, stock) VALUES ('after-bad-backup', 1, 1)")
	time.Sleep(1100 * time.Millisecond) // the next backup gets a name of its own
	archiver.MustRun(t, "basebackup")
	verified := archiver.Backups(t)
	require.Len(t, verified, 3)
	newest := verified[len(verified)-1]
	flipByte(t, filepath.Join(archiver.Dir, "base", newest, "PG_VERSION"))
	archiver.Stop(t)
	r := recoverInto(t, primary, archiver.Dir, "latest")
	assert.Contains(t, r.Log, "base backup "+newest+" fails pg_verifybackup, skipped")
	assert.Contains(t, r.Log, "restoring base backup "+first[0])
	assert.Equal(t, "1", pgtest.QueryString(t, r.conn, "SELECT count(*) FROM shop.products WHERE name = 'after-bad-backup'"))
}

// TestPITRRetentionKeepsTheWALTheBackupsNeed: with BASEBACKUP_KEEP=2, a third backup removes
// the oldest and the WAL before the start of the oldest one kept, and nothing after it.
func TestPITRRetentionKeepsTheWALTheBackupsNeed(t *testing.T) {
	primary, archiver := archivedPrimary(t, nil)
	for range 2 {
		primary.Exec(t, "postgres", "SELECT pg_switch_wal()")
		time.Sleep(1100 * time.Millisecond)
		archiver.MustRun(t, "basebackup")
	}
	backups := archiver.Backups(t)
	require.Len(t, backups, 2, "BASEBACKUP_KEEP=2")
	label, err := os.ReadFile(filepath.Join(archiver.Dir, "base", backups[0], "backup_label"))
	require.NoError(t, err)
	start := strings.TrimSuffix(strings.SplitN(string(label), "(file ", 2)[1][:24], ")")
	segments, err := filepath.Glob(filepath.Join(archiver.Dir, "wal", "0000*"))
	require.NoError(t, err)
	require.NotEmpty(t, segments)
	assert.Equal(t, start, filepath.Base(segments[0])[:24], "the oldest WAL kept is where the oldest backup starts")
}

// TestDurabilityLostPrimaryLosesNoAcknowledgedOrder: prod's quorum commit (ANY 1 of the
// replica and the archiver) under order load; the primary is killed with SIGKILL and its data
// directory deleted. Promoting the replica after it has replayed the archive (the README's
// procedure) loses no acknowledged order; recovering from the archive alone is reported.
func TestDurabilityLostPrimaryLosesNoAcknowledgedOrder(t *testing.T) {
	replicaName := "database-replica-0"
	primary, archiver := archivedPrimary(t, func(s *assets.PostgresSettings) {
		s.SynchronousStandbys = prodSynchronousStandbys(t)
	})
	replica := newReplica(t, primary, replicaName)
	replica.Bootstrap(t)
	replica.Start(t)
	_, all := losePrimaryUnderLoad(t, primary, archiver)

	t.Run("from the archive alone", func(t *testing.T) {
		r := recoverInto(t, primary, archiver.Dir, "latest")
		gone := missing(all, r.OrderIDs(t))
		t.Logf("durability: archive alone: %d of %d acknowledged orders missing", len(gone), len(all))
	})
	t.Run("promote the replica after it replayed the archive", func(t *testing.T) {
		replica.Stop(t)
		restore := "restore_command = 'cp \"" + archiver.Dir + "/wal/%f\" \"%p\" 2>/dev/null || cp \"" + archiver.Dir + "/wal/%f.partial\" \"%p\" 2>/dev/null'\n"
		f, err := os.OpenFile(filepath.Join(replica.Data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString(restore)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		replica.Start(t)
		conn := replica.Connect(t)
		ctx := context.Background()
		time.Sleep(2 * time.Second) // the standby reads the archive when streaming fails
		_, err = conn.Exec(ctx, "SELECT pg_promote(true, 60)")
		require.NoError(t, err)
		ids := recovered{conn: conn}.OrderIDs(t)
		gone := missing(all, ids)
		t.Logf("durability: promoted replica: %d of %d acknowledged orders missing", len(gone), len(all))
		assert.Empty(t, gone, "acknowledged orders lost with quorum commit")
	})
}

// losePrimaryUnderLoad places orders from 8 clients through PgBouncer, kills the primary
// with SIGKILL after 2 s and deletes its data directory, then stops the archiver. It returns
// when each order was acknowledged and the acknowledged ids, ascending.
func losePrimaryUnderLoad(t *testing.T, primary *pgtest.Server, archiver *pgArchiver) (map[int64]time.Time, []int64) {
	t.Helper()
	user, products := shopForLoad(t, primary)
	load := startOrders(t, loadPool(t, primary), 8, user, products)
	time.Sleep(2 * time.Second)
	require.NoError(t, primary.Proc.Cmd.Process.Kill())
	<-primary.Proc.Done
	require.NoError(t, os.RemoveAll(primary.DataDir))
	acked := load.Stop()
	all, _ := ackedBefore(acked, time.Now().Add(time.Hour))
	require.NotEmpty(t, all)
	time.Sleep(500 * time.Millisecond)
	archiver.Stop(t)
	return acked, all
}

// prodSynchronousStandbys is synchronous_standby_names as the prod stack renders it for one
// replica and the archiver without Patroni (databaseFailover false; under Patroni the quorum
// is its own, proven by tests/failover).
func prodSynchronousStandbys(t *testing.T) string {
	r := testkit.MustRun(t, "prod", map[string]string{"databaseReplicas": "1", "databaseFailover": "false"})
	conf := testkit.TypedConfigMap(t, r, "database-config").Data["postgresql.conf"]
	for _, line := range strings.Split(conf, "\n") {
		if v, ok := strings.CutPrefix(line, "synchronous_standby_names = '"); ok {
			return strings.TrimSuffix(v, "'")
		}
	}
	t.Fatal("prod's postgresql.conf sets no synchronous_standby_names")
	return ""
}

// flipByte corrupts one byte of a file, as bit rot would.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	pgtest.WriteFile(t, path, string(b), 0o600)
}

// TestDurabilityLostPrimaryDevSettings: dev's asynchronous commit under the same load and the
// same loss; recovering from the archive alone reports what is missing and how many seconds
// of orders that is (the archive streams each record as it is written, so it trails by
// milliseconds).
func TestDurabilityLostPrimaryDevSettings(t *testing.T) {
	primary, archiver := archivedPrimary(t, nil)
	acked, all := losePrimaryUnderLoad(t, primary, archiver)
	r := recoverInto(t, primary, archiver.Dir, "latest")
	gone := missing(all, r.OrderIDs(t))
	lost := time.Duration(0)
	if len(gone) > 0 {
		first, last := acked[gone[0]], acked[gone[0]]
		for _, id := range all {
			if acked[id].After(last) {
				last = acked[id]
			}
		}
		for _, id := range gone {
			if acked[id].Before(first) {
				first = acked[id]
			}
		}
		lost = last.Sub(first)
	}
	t.Logf("durability: dev settings (asynchronous), archive alone: %d of %d acknowledged orders missing, %.3f s of orders lost",
		len(gone), len(all), lost.Seconds())
	assert.Less(t, lost, time.Second, "the archive trails by at most a second")
}
