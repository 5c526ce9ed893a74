package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
)

// SyncCredentials runs the deployed credentials-sync.sh (what the database-credentials Job
// runs) against the server: the authenticator's and the job roles' passwords and the JWT
// signing key.
func (s *Server) SyncCredentials(t testing.TB, db, authenticatorPassword, jwtSecret string) string {
	t.Helper()
	return s.SyncCredentialsWithReplication(t, db, authenticatorPassword, jwtSecret, "")
}

// SyncCredentialsWithReplication also sets the replicator role's password ("": no replicas).
func (s *Server) SyncCredentialsWithReplication(t testing.TB, db, authenticatorPassword, jwtSecret, replicationPassword string) string {
	t.Helper()
	out, err := s.syncCredentials(t, db, authenticatorPassword, jwtSecret, replicationPassword)
	require.NoError(t, err, "credentials-sync.sh:\n%s", out)
	return out
}

// TrySyncCredentials runs credentials-sync.sh and returns what it printed and how it ended,
// for values the database may refuse.
func (s *Server) TrySyncCredentials(t testing.TB, db, authenticatorPassword, jwtSecret string) (string, error) {
	t.Helper()
	return s.syncCredentials(t, db, authenticatorPassword, jwtSecret, "")
}

// TrySyncCredentialsEnv runs credentials-sync.sh with extra environment (NAME=value), e.g.
// the optional ORDER_MAX_OPEN_UNITS the Job sets.
func (s *Server) TrySyncCredentialsEnv(t testing.TB, db, authenticatorPassword, jwtSecret string, extra ...string) (string, error) {
	t.Helper()
	return s.syncCredentials(t, db, authenticatorPassword, jwtSecret, "", extra...)
}

func (s *Server) syncCredentials(t testing.TB, db, authenticatorPassword, jwtSecret, replicationPassword string, extra ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"owner": SuperuserPassword, "authenticator": authenticatorPassword, "jwt": jwtSecret, "replication": replicationPassword,
		"backup": BackupPassword, "release-unpaid": ReleaseUnpaidPassword, "monitor": MonitorPassword}
	for name, value := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600))
	}
	script := filepath.Join(dir, "credentials-sync.sh")
	require.NoError(t, os.WriteFile(script, []byte(assets.CredentialsSyncScript()), 0o600))
	cmd := exec.Command("sh", script)
	cmd.Env = append(s.ClientEnv(db,
		"PGPASSWORD_FILE="+filepath.Join(dir, "owner"),
		"AUTHENTICATOR_PASSWORD_FILE="+filepath.Join(dir, "authenticator"),
		"JWT_SECRET_FILE="+filepath.Join(dir, "jwt"),
		"REPLICATION_PASSWORD_FILE="+filepath.Join(dir, "replication"),
		"BACKUP_PASSWORD_FILE="+filepath.Join(dir, "backup"),
		"RELEASE_UNPAID_PASSWORD_FILE="+filepath.Join(dir, "release-unpaid"),
		"MONITOR_PASSWORD_FILE="+filepath.Join(dir, "monitor"),
		"TIMEOUT_SECONDS=10"), extra...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
