package postgres

// The third attack round (issue 27), findings 1 and 2: the archive's off-site copy, with the
// deployed archive.sh against real PostgreSQL 15 and the program's recorded offsite-sync
// container (real rclone) against the real S3 server of the off-site tests.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/s3test"
)

// keyMaterial is what must never be readable off site: the signing key before and after a
// rotation, the bcrypt hashes of shop.users and the SCRAM verifiers of pg_authid.
func keyMaterial(rotated string) map[string][]byte {
	return map[string][]byte{
		"the JWT signing key":                []byte(pgtest.JWTSecret),
		"the rotated JWT signing key":        []byte(rotated),
		"a bcrypt hash ($2a$)":               []byte("$2a$"),
		"a bcrypt hash ($2b$)":               []byte("$2b$"),
		"a SCRAM-SHA-256 verifier":           []byte("SCRAM-SHA-256$4096:"),
		"the replicator's password (sanity)": []byte(pgReplicationPassword),
	}
}

// findIn lists which of the needles appear in some file under dir.
func findIn(t *testing.T, dir string, needles map[string][]byte) map[string]string {
	t.Helper()
	found := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for what, needle := range needles {
			if _, seen := found[what]; !seen && bytes.Contains(b, needle) {
				found[what], _ = filepath.Rel(dir, path)
			}
		}
		return nil
	}))
	return found
}

// 1. The archive holds the signing key (shop.jwt_keys' data file in every base backup, each
// rotation in the WAL) and every password hash: the bucket must hold none of it. Archive,
// rotate the key, copy off site with the deployed container, then read every object as
// stored: no key material, in contents or names.
func TestAttackRound3ArchiveHoldsNoSigningKey(t *testing.T) {
	primary, archiver := archivedPrimary(t, nil)
	rotated := "rotated-engine-jwt-secret-of-at-least-32-chars"
	primary.SyncCredentialsWithReplication(t, pgtest.Database, pgtest.AuthenticatorPassword, rotated, pgReplicationPassword)
	primary.Exec(t, "postgres", "CHECKPOINT")
	primary.Exec(t, "postgres", "SELECT pg_switch_wal()") // the rotation's segment is complete
	archiver.WaitCaughtUp(t)
	archiver.MustRun(t, "basebackup") // a backup taken after the rotation too

	needles := keyMaterial(rotated)
	delete(needles, "the replicator's password (sanity)") // never stored in clear, even locally
	local := findIn(t, archiver.Dir, needles)
	for what := range needles {
		if what != "a bcrypt hash ($2b$)" { // pgcrypto writes $2a$
			require.Containsf(t, local, what, "the local archive holds %s (else this test proves nothing)", what)
		}
	}
	t.Logf("in the local archive (stays in the cluster): %v", local)

	store := s3test.Start(t)
	remote := "offsite:" + s3test.Bucket + "/prod"
	runOffsiteScript(t, store, "offsite-sync", []string{"ARCHIVE_DIR=" + archiver.Dir, "REMOTE=" + remote}, "once")
	objects := bucketObjects(t, store, "prod")
	require.NotEmpty(t, objects, "something was copied")

	// Every object as the bucket's reader gets it: raw, without the key.
	raw := t.TempDir()
	out, err := store.Rclone(t, "127.0.0.1", testkit.RequireEngine(t, "rclone"), "copy", remote, raw)
	require.NoError(t, err, out)
	found := findIn(t, raw, keyMaterial(rotated))
	assert.Empty(t, found, "key material readable in the bucket")
	var readable []string
	for name := range objects {
		for _, word := range []string{"pg_wal", "global", "backup_manifest", "jwt", ".partial"} {
			if strings.Contains(name, word) {
				readable = append(readable, name)
			}
		}
	}
	assert.Empty(t, readable, "object names are readable")
}

// 2. The copy mirrored: an archiver starting on an empty claim (a lost or fresh claim, or the
// same stack in a second cluster) deleted every backup and WAL segment off site on its first
// copy. Now nothing in the bucket is deleted or replaced.
func TestAttackRound3FreshArchiveDeletesNothingOffsite(t *testing.T) {
	primary, archiver := archivedPrimary(t, nil)
	primary.Exec(t, "postgres", "SELECT pg_switch_wal()")
	archiver.WaitCaughtUp(t)
	store := s3test.Start(t)
	remote := "offsite:" + s3test.Bucket + "/prod"
	runOffsiteScript(t, store, "offsite-sync", []string{"ARCHIVE_DIR=" + archiver.Dir, "REMOTE=" + remote}, "once")
	before := bucketObjects(t, store, "prod")
	require.Greater(t, len(before), 10, "the bucket holds a base backup and WAL")
	archiver.Stop(t)

	// A new archiver pod on an empty claim: it streams again, no base backup yet.
	fresh := newArchiver(t, primary)
	fresh.Receive(t)
	primary.Exec(t, pgtest.Database, "INSERT INTO shop.products (name, price, stock) VALUES ('after-the-new-claim', 1, 1)")
	fresh.WaitCaughtUp(t)
	runOffsiteScript(t, store, "offsite-sync", []string{"ARCHIVE_DIR=" + fresh.Dir, "REMOTE=" + remote}, "once")
	// And a claim with nothing at all on it.
	runOffsiteScript(t, store, "offsite-sync", []string{"ARCHIVE_DIR=" + t.TempDir(), "REMOTE=" + remote}, "once")

	after := bucketObjects(t, store, "prod")
	t.Logf("objects off site: %d before the empty claim, %d after", len(before), len(after))
	assert.GreaterOrEqual(t, len(after), len(before), "objects were deleted off site")
	var deleted, replaced []string
	for name, hash := range before {
		if now, ok := after[name]; !ok {
			deleted = append(deleted, name)
		} else if now != hash {
			replaced = append(replaced, name)
		}
	}
	assert.Empty(t, deleted, "deleted off site")
	assert.Empty(t, replaced, "replaced off site")
}
