package postgres

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit/pgtest"
)

// The rotation sequence of the README, on a live primary and PgBouncer with a client loop
// querying through the pool the way PostgREST does: the credentials job (the deployed
// credentials-sync.sh) changes the authenticator's password, then the backend pod "rolls" (a
// new PgBouncer with the new auth file takes the traffic, the old one stops). The loop keeps
// answering; the longest gap is reported.
func TestRotationKeepsTheAPIAnswering(t *testing.T) {
	s := pgtest.StartLoaded(t, true)
	startPool := func(name, password string) *pgtest.PgBouncer {
		return pgtest.StartPgBouncer(t, s, name, password,
			assets.PgBouncerSettings{DefaultPoolSize: 4, ReservePoolSize: 1, MaxClientConn: 50, MaxDBConns: 5})
	}

	const newPassword = "authenticator-rotated-password"
	oldPool := startPool("pgbouncer-old", pgtest.AuthenticatorPassword)
	var target atomic.Value
	target.Store(oldPool.ConnString(pgtest.AuthenticatorPassword))

	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	var ok, failed int
	var phase atomic.Int32     // 0 before the job, 1 after it (old pool), 2 on the new pool
	answered := make([]int, 3) // answers per phase: the API answers in each of them
	var gap, longest time.Duration
	var lastOK time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		lastOK = time.Now()
		for ctx.Err() == nil {
			err := poolQuery(ctx, target.Load().(string))
			mu.Lock()
			if err == nil {
				ok++
				answered[phase.Load()]++
				gap = time.Since(lastOK)
				longest = max(longest, gap)
				lastOK = time.Now()
			} else if ctx.Err() == nil {
				failed++
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	time.Sleep(300 * time.Millisecond)
	// 1. The credentials job: the database gets the new password.
	s.SyncCredentials(t, pgtest.Database, newPassword, pgtest.JWTSecret)
	phase.Store(1)
	time.Sleep(300 * time.Millisecond)
	// 2. The backend rolls: a new pod (PgBouncer with the new auth file) takes over.
	target.Store(startPool("pgbouncer-new", newPassword).ConnString(newPassword))
	phase.Store(2)
	time.Sleep(100 * time.Millisecond)
	_ = oldPool.Cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	stop()
	<-done

	mu.Lock()
	defer mu.Unlock()
	// A loop that stopped answering at some point counts until the end, too.
	longest = max(longest, time.Since(lastOK))
	t.Logf("rotation: %d queries answered (%v per phase), %d failed, longest gap between answers %.0f ms",
		ok, answered, failed, float64(longest.Microseconds())/1000)
	for i, n := range answered {
		assert.Positivef(t, n, "phase %d (0: before the job, 1: after it, 2: on the rolled pool) had no answer", i)
	}
	assert.Less(t, longest, 2*time.Second, "the API answers throughout, but for a gap of one pod restart at most")
	// The old password no longer opens the database.
	_, err := pgx.Connect(context.Background(), fmt.Sprintf("host=127.0.0.1 port=%d user=authenticator password=%s dbname=%s sslmode=disable",
		s.Port, pgtest.AuthenticatorPassword, pgtest.Database))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "password authentication failed")
}

// poolQuery is one API request as PostgREST makes it through the pool.
func poolQuery(ctx context.Context, conn string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, conn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return pgtest.AsRole(cctx, c, "web_anon", "", true, func(tx pgx.Tx) error {
		var n int
		return tx.QueryRow(cctx, "SELECT count(*) FROM api.products").Scan(&n)
	})
}

// A changed owner password (dbPassword) is not rotated by the credentials job (it logs in
// with it): the job fails loudly, naming the procedure, instead of an outage nobody sees.
func TestRotationOfTheOwnerPasswordIsRefusedWithTheProcedure(t *testing.T) {
	s := pgtest.StartLoaded(t, false)
	run := func(ownerPassword string) (string, error) {
		dir := t.TempDir()
		for name, value := range map[string]string{"owner": ownerPassword, "authenticator": pgtest.AuthenticatorPassword, "jwt": pgtest.JWTSecret, "replication": ""} {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600))
		}
		script := filepath.Join(dir, "credentials-sync.sh")
		require.NoError(t, os.WriteFile(script, []byte(assets.CredentialsSyncScript()), 0o600))
		cmd := exec.Command("sh", script)
		// Over TCP, as the job's pod connects (the socket trusts local users).
		cmd.Env = append(s.ClientEnv(pgtest.Database, "PGPASSWORD_FILE="+filepath.Join(dir, "owner"),
			"AUTHENTICATOR_PASSWORD_FILE="+filepath.Join(dir, "authenticator"), "JWT_SECRET_FILE="+filepath.Join(dir, "jwt"),
			"REPLICATION_PASSWORD_FILE="+filepath.Join(dir, "replication"), "TIMEOUT_SECONDS=10"),
			"PGHOST=127.0.0.1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("a-new-owner-password-set-in-config")
	require.Error(t, err)
	assert.Contains(t, out, "the database owner's password (dbPassword) does not open the database")
	assert.Contains(t, out, `\password ecommerce`)
	out, err = run(pgtest.SuperuserPassword)
	require.NoError(t, err, out)
}
