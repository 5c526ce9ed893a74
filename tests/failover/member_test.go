package failover

// The database members: one real Patroni 4.0.7 (.tools/bin/patroni) and PostgreSQL 15 per
// member, each with its own data directory, ports and pod object, on the patroni.yml the
// program renders (assets.RenderPatroniYAML) with the prod stack's timings and quorum. Only
// what a pod would get from its spec differs per member: PATRONI_NAME, the addresses, and
// (the pods sharing this machine) the ports in the rendered listen addresses.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
)

// The prod stack's failover settings (databaseFailoverTtlSeconds, ...LoopWaitSeconds,
// ...RetryTimeoutSeconds defaults; databaseReplicas 2 and databaseSyncStandbys 1 in
// Pulumi.prod.yaml): three members, a commit acknowledged once one other member has it.
const (
	members         = 3
	ttl             = 20
	loopWait        = 5
	retryTimeout    = 5
	syncNodes       = 1
	scope           = "database"
	namespace       = "ecommerce-prod"
	archiverSlot    = "database_archiver" // database.ArchiverSlot
	replicationUser = "replicator"
	replicationPass = "replication-test-password"
	kubeContext     = "failover-test"
)

// podLabels are the members' pod labels besides Patroni's scope label.
var podLabels = map[string]string{"app.kubernetes.io/name": "database", "app.kubernetes.io/part-of": "ecommerce"}

// member is one database pod: its pod object, Patroni and the PostgreSQL it runs.
type member struct {
	Name      string
	Dir       string // the pod's files: patroni.yml, postgresql.conf, kubeconfig, logs
	DataDir   string
	SocketDir string
	PGPort    int
	APIPort   int // Patroni's REST API
	toAPI     *forwarder
	config    string // path of patroni.yml
	env       []string
	proc      *pgtest.Process
	starts    int
}

// shopCluster is the control plane and the members of one test.
type shopCluster struct {
	t       *testing.T
	cp      *controlPlane
	members []*member
	patroni string
	binDir  string
}

// startCluster starts the API server, creates the namespace and one pod object per member,
// starts every member's Patroni and waits until one leads and the others stream in its
// quorum.
func startCluster(t *testing.T) *shopCluster {
	t.Helper()
	c := newCluster(t)
	for _, m := range c.members {
		c.start(m)
	}
	leader := c.waitLeader(nil, 90*time.Second)
	c.waitQuorum(leader, members-1, 120*time.Second)
	return c
}

// newCluster starts the API server, creates the namespace and one pod object per member and
// writes each member's files; no Patroni runs yet.
func newCluster(t *testing.T) *shopCluster {
	t.Helper()
	// The folder of all PostgreSQL's programs (Patroni runs pg_ctl, pg_isready, pg_rewind,
	// pg_basebackup from bin_dir), not a link to one of them on PATH.
	pg, err := filepath.EvalSymlinks(testkit.RequireEngine(t, "postgres"))
	require.NoError(t, err)
	c := &shopCluster{t: t, patroni: testkit.RequireTool(t, "patroni"), binDir: filepath.Dir(pg)}
	for _, prog := range []string{"pg_ctl", "pg_isready", "pg_rewind", "pg_basebackup", "psql"} {
		_, err := os.Stat(filepath.Join(c.binDir, prog))
		require.NoError(t, err, "Patroni's bin_dir %s lacks %s", c.binDir, prog)
	}
	c.cp = startControlPlane(t)
	c.cp.create(t, "/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": namespace}})
	// The ServiceAccount admission plugin wants one; the controller that makes it is not run.
	c.cp.create(t, "/api/v1/namespaces/"+namespace+"/serviceaccounts", map[string]any{"metadata": map[string]any{"name": "default"}})
	for i := range members {
		m := &member{Name: fmt.Sprintf("database-%d", i), Dir: pgtest.ServerDir(t), SocketDir: pgtest.SocketDir(t),
			PGPort: listenPort(t), APIPort: listenPort(t)}
		m.DataDir = filepath.Join(m.Dir, "data")
		labels := map[string]string{"cluster-name": scope}
		for k, v := range podLabels {
			labels[k] = v
		}
		c.cp.create(t, "/api/v1/namespaces/"+namespace+"/pods", map[string]any{
			"metadata": map[string]any{"name": m.Name, "labels": labels},
			"spec": map[string]any{"automountServiceAccountToken": false,
				"containers": []any{map[string]any{"name": "postgres", "image": "percona/percona-distribution-postgresql:15.17-1"}}},
		})
		m.toAPI = startForwarder(t, "api-"+m.Name, func() (int, bool) { return c.cp.Port, true })
		c.writeFiles(m)
		c.members = append(c.members, m)
		t.Cleanup(func() { killPostmaster(m) }) // after Patroni's own stop (cleanups run last first)
	}
	return c
}

var (
	pickedMu sync.Mutex
	picked   = map[int]bool{} // never the same port twice in one test binary
)

// listenPort is a free port below the kernel's ephemeral range (as scripts/cluster-up.sh
// picks them): a member binds it seconds later, after restarts too, and a port from the
// ephemeral range may meanwhile be the local end of one of the many outgoing connections.
func listenPort(t *testing.T) int {
	t.Helper()
	pickedMu.Lock()
	defer pickedMu.Unlock()
	for range 100 {
		p := 20000 + rand.IntN(12000)
		if picked[p] {
			continue
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			picked[p] = true
			_ = l.Close()
			return p
		}
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

// writeFiles renders the member's patroni.yml and postgresql.conf (custom_conf) as the pod
// mounts them, and its environment as the pod spec sets it.
func (c *shopCluster) writeFiles(m *member) {
	t := c.t
	db := config.Defaults().Database
	s := assets.PatroniSettings{
		Scope: scope, Namespace: namespace, Labels: podLabels, ScopeLabel: "cluster-name", RoleLabel: "role",
		// The API server is reached through the member's forwarder (kubeconfig), not through
		// the kubernetes Service's endpoints, which this control plane does not keep.
		BypassAPIService: false,
		TTL:              ttl, LoopWait: loopWait, RetryTimeout: retryTimeout, MaximumLagOnFailover: 1 << 20,
		SynchronousNodeCount: syncNodes, ArchiverSlot: archiverSlot,
		DataDir: m.DataDir, BinDir: c.binDir, CustomConf: filepath.Join(m.Dir, "postgresql.conf"),
		PgPass: filepath.Join(m.Dir, "pgpass"), PostBootstrap: filepath.Join(m.Dir, "patroni-post-bootstrap.sh"),
		ListenAddress: "127.0.0.1", RESTAPIPort: m.APIPort,
		SuperuserName: pgtest.Superuser, ReplicationUser: replicationUser,
		Postgres: assets.PostgresSettings{
			Port: m.PGPort, MaxConnections: db.MaxConnections, SharedBuffers: db.SharedBuffers, WorkMem: db.WorkMem,
			EffectiveCacheSize: db.EffectiveCacheSize, LogMinDurationStatement: db.LogMinDurationMs,
			UnixSocketDir: m.SocketDir, HBAFile: filepath.Join(m.DataDir, "pg_hba.conf"), ReplicaWalKeepSize: db.ReplicaWalKeepSize,
		},
	}
	yml, err := assets.RenderPatroniYAML(s)
	require.NoError(t, err)
	conf, err := s.PostgresConf()
	require.NoError(t, err)
	m.config = filepath.Join(m.Dir, "patroni.yml")
	pgtest.WriteFile(t, m.config, yml, 0o644)
	pgtest.WriteFile(t, s.CustomConf, conf, 0o644)
	pgtest.WriteFile(t, s.PostBootstrap, assets.PatroniPostBootstrapScript(), 0o644)
	pgtest.WriteFile(t, filepath.Join(m.Dir, "kubeconfig"),
		c.cp.kubeconfig(fmt.Sprintf("https://127.0.0.1:%d", m.toAPI.Port), kubeContext), 0o600)
	m.env = []string{
		"PATRONI_NAME=" + m.Name,
		"PATRONI_KUBERNETES_POD_IP=127.0.0.1",
		fmt.Sprintf("PATRONI_POSTGRESQL_CONNECT_ADDRESS=127.0.0.1:%d", m.PGPort),
		fmt.Sprintf("PATRONI_RESTAPI_CONNECT_ADDRESS=127.0.0.1:%d", m.APIPort),
		"PATRONI_SUPERUSER_PASSWORD=" + pgtest.SuperuserPassword,
		"PATRONI_REPLICATION_PASSWORD=" + replicationPass,
		"POSTGRES_DB=" + pgtest.Database,
		// Outside a pod: the kubeconfig (its context named, Patroni's default is kind-kind),
		// and no in-cluster service variables of the machine running the test.
		"KUBECONFIG=" + filepath.Join(m.Dir, "kubeconfig"),
		"PATRONI_KUBERNETES_CONTEXT=" + kubeContext,
		"KUBERNETES_SERVICE_HOST=", "KUBERNETES_SERVICE_PORT=",
		"HOME=" + m.Dir, "PGTZ=UTC",
	}
}

// start runs the member's Patroni (again: a restarted container, same data directory).
func (c *shopCluster) start(m *member) {
	m.starts++
	m.proc = pgtest.StartProcessEnv(c.t, m.Name, filepath.Join(m.Dir, fmt.Sprintf("patroni-%d.log", m.starts)),
		syscall.SIGTERM, m.env, c.patroni, m.config)
}

// kill is a node's death: SIGKILL to Patroni and to the postmaster at once (Patroni alone
// would leave PostgreSQL running; PostgreSQL alone would be restarted by Patroni).
func (c *shopCluster) kill(m *member) {
	pid := postmasterPID(m)
	require.NoError(c.t, m.proc.Cmd.Process.Kill())
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-m.proc.Done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s's Patroni did not die", m.Name)
	}
	// The backends end on their own once the postmaster is gone.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && pid > 0 && syscall.Kill(pid, 0) == nil {
		time.Sleep(50 * time.Millisecond)
	}
}

// postmasterPID is the first line of postmaster.pid, 0 when there is none.
func postmasterPID(m *member) int {
	b, err := os.ReadFile(filepath.Join(m.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// killPostmaster ends a PostgreSQL that outlived its Patroni (a failed test).
func killPostmaster(m *member) {
	if pid := postmasterPID(m); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// patroniStatus is what GET /patroni answers.
type patroniStatus struct {
	State    string `json:"state"`
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
}

// clusterStatus is what GET /cluster answers.
type clusterStatus struct {
	Members []struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		State    string `json:"state"`
		Timeline int    `json:"timeline"`
	} `json:"members"`
}

// rest GETs a path of a member's REST API.
func rest(m *member, path string, out any) (int, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", m.APIPort, path))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: %w (%s)", path, err, b)
		}
	}
	return resp.StatusCode, nil
}

// waitLeader waits until a member other than not is a running primary with the leader lock
// (GET /primary answers 200) and returns it.
func (c *shopCluster) waitLeader(not *member, within time.Duration) *member {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, m := range c.members {
			if m == not || m.proc == nil || m.proc.Exited() {
				continue
			}
			if code, err := rest(m, "/primary", nil); err == nil && code == http.StatusOK {
				return m
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader within %s:\n%s", within, c.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitQuorum waits until n members stream from leader as quorum standbys
// (pg_stat_replication's sync_state 'quorum': synchronous_standby_names is ANY ...).
func (c *shopCluster) waitQuorum(leader *member, n int, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		names, err := quorumStandbys(leader)
		if err == nil && len(names) >= n {
			return
		}
		last = fmt.Sprint(names, err)
		if time.Now().After(deadline) {
			c.t.Fatalf("not %d quorum standbys streaming from %s within %s (last: %s):\n%s", n, leader.Name, within, last, c.logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// quorumStandbys are the members streaming from m in its quorum.
func quorumStandbys(m *member) ([]string, error) {
	conn, err := connect(m, "postgres")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(),
		"SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'quorum' ORDER BY 1")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// connect opens a superuser connection to a member's PostgreSQL over its socket.
func connect(m *member, db string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=2",
		m.SocketDir, m.PGPort, pgtest.Superuser, db))
}

// shop is a pgtest.Server over the leader's PostgreSQL, for the project's schema and
// credential helpers (the database-migrate and credentials Jobs' steps).
func (c *shopCluster) shop(leader *member) *pgtest.Server {
	psql := testkit.RequireEngine(c.t, "psql")
	return &pgtest.Server{Dir: c.t.TempDir(), SocketDir: leader.SocketDir, Port: leader.PGPort, DataDir: leader.DataDir,
		Path: filepath.Dir(psql) + string(os.PathListSeparator) + os.Getenv("PATH")}
}

// logs are the members' Patroni logs (the last lines of each), for a failure message.
func (c *shopCluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		for i := 1; i <= m.starts; i++ {
			text, _ := os.ReadFile(filepath.Join(m.Dir, fmt.Sprintf("patroni-%d.log", i)))
			lines := strings.Split(string(text), "\n")
			fmt.Fprintf(&b, "--- %s patroni-%d.log (last 40 lines)\n%s\n", m.Name, i, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	}
	return b.String()
}
