package contract

// Container contract suite: every container of every workload the program registers, for
// each stack, whose program exists on this machine, run the way the kubelet runs it (see
// sandbox_test.go), against each other: the database pod, the backend pod's init
// container and PgBouncer against it, the backup job and a restore of its dump, the frontend
// pod's nginx and exporter. Containers that cannot run here are listed with what covers them.

import (
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"ecommerce-platform/components"
	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/database"
	"ecommerce-platform/tests/testkit"
	"ecommerce-platform/tests/testkit/pgtest"
	"ecommerce-platform/tests/testkit/s3test"
)

// contractRan records which containers ran, per stack, for the not-run listing.
type contractRan struct {
	mu  sync.Mutex
	set map[string]bool
}

func (c *contractRan) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set[name] = true
}

func TestContainerContract(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "the container contract sandbox needs root (network namespaces, setpriv to other uids)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		testkit.ReportSkip(t, "root")
		t.Skip(msg)
	}
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) { contractStack(t, stack) })
	}
}

func contractStack(t *testing.T, stack string) {
	c := newContractRun(t, stack)
	c.databasePod(t)
	t.Run("migrate job brings the empty database to the schema, and again changes nothing", c.migrateJob)
	t.Run("credentials job sets the API password and the signing key", c.credentialsJob)
	if c.primary.token != "" { // Patroni's members: the first leads; the next clones it
		c.secondMember(t)
	}
	if slices.Contains(c.r.Names(testkit.StatefulSet), "database-replica") {
		t.Run("a read replica bootstraps from the primary and streams", c.readReplica)
	}
	t.Run("archiver streams WAL and takes a verified base backup into its own claim", c.archiverPod)
	t.Run("backend init container completes against the database pod", c.backendPod)
	t.Run("backup job writes a dump the restore command reads back", c.backupRoundTrip)
	t.Run("backup job names a wrong password and a missing file", c.backupFailures)
	t.Run("release-unpaid job releases an order left unpaid", c.releaseUnpaid)
	t.Run("frontend: nginx and its exporter ready, log bounded, graceful stop", c.frontendPods)
	t.Run("containers not run here are named with what covers them", c.notRunListing)
	if c.member != nil {
		t.Run("the leader stops as the kubelet stops it and the other member takes the lock", c.leaderStops)
	}
	for _, n := range slices.Sorted(maps.Keys(c.timings)) {
		t.Logf("contract timing %s: %s %.1fs", stack, n, c.timings[n].Seconds())
	}
}

// contractRun is one stack's contract run: the recorded program, its sandbox cluster, what
// ran and how long each container took to start, and the database pod the others use.
type contractRun struct {
	stack    string
	r        testkit.Run
	cluster  *sandboxCluster
	ran      *contractRan
	timings  map[string]time.Duration
	postgres *ctr
	primary  *sandboxPod    // database-0, with its exporter
	member   *ctr           // under Patroni: database-1's, the second member
	products string         // shop.products' row count after the first start
	store    *s3test.Server // the object storage of the off-site copies (stacks that copy)
}

// objectStoreHost is the object storage endpoint's name in the sandbox: the host, where the
// test's S3 server runs.
const objectStoreHost = "objectstore.test"

func newContractRun(t *testing.T, stack string) *contractRun {
	var store *s3test.Server
	overrides := map[string]string{}
	if testkit.ReadStackFile(t, testkit.ProjectFile(t, "Pulumi."+stack+".yaml")).Values[testkit.Project+":databaseOffsite"] == "true" {
		store = s3test.Start(t)
		// The sandbox's S3 server speaks plain http on the host: accepted with the flag only.
		overrides = map[string]string{"databaseOffsiteEndpoint": store.Endpoint(objectStoreHost), "databaseOffsiteAllowInsecureHttp": "true",
			"databaseOffsiteBucket": s3test.Bucket, "offsiteAccessKeyId": s3test.AccessKey, "offsiteSecretAccessKey": s3test.SecretKey}
	}
	r := testkit.MustRun(t, stack, overrides)
	cluster := newSandboxCluster(t, r)
	cluster.hosts[objectStoreHost] = cluster.net.prefix + ".1"
	cert, key := testkit.TLSKeyPair(t)
	cluster.external["frontend-tls"] = map[string]string{"tls.crt": string(cert), "tls.key": string(key)}
	return &contractRun{stack: stack, r: r, cluster: cluster, ran: &contractRan{set: map[string]bool{}}, timings: map[string]time.Duration{}, store: store}
}

// databasePod starts database-0 of the StatefulSet, with its claim: postgres (whose exec
// probes run under the seccomp filter too) and its exporter.
func (c *contractRun) databasePod(t *testing.T) {
	dbSet := c.r.Object(t, testkit.StatefulSet, "database")
	dbPod := c.cluster.newPod(t, "database-0", testkit.TypedPod(t, dbSet), map[string]string{"data": "data-database-0"})
	c.primary = dbPod
	started := time.Now()
	c.postgres = dbPod.start(t, "postgres")
	c.timings["postgres"] = c.postgres.awaitStarted(t)
	if dbPod.token != "" { // started once Patroni answers; ready once its PostgreSQL runs (or it leads)
		c.postgres.awaitReady(t, 2*time.Minute)
		c.timings["patroni: database-0 ready (/readiness)"] = time.Since(started)
	}
	c.postgres.requireReadyAndLive(t)
	c.ran.add("postgres")
	if dbPod.token != "" {
		c.timings["patroni: database-0 labelled primary"] = c.awaitRole(t, dbPod, c.postgres, "primary", started)
		c.patroniLeader(t, dbPod)
	}
	code, status := c.postgres.exec(5*time.Second, "grep", "^Seccomp:", "/proc/self/status")
	require.Zero(t, code, status)
	assert.Equal(t, "Seccomp:\t2\n", status, "exec probes run under the container's seccomp filter too")
	exporter := dbPod.start(t, "postgres-exporter")
	c.timings["postgres-exporter"] = exporter.awaitStarted(t)
	exporter.requireReadyAndLive(t)
	c.ran.add("postgres-exporter")
}

// migrateJob runs the database-migrate Job's three containers in order, as the kubelet runs a
// Job pod's init containers and then its container, twice: bootstrap as the superuser,
// golang-migrate as the migrator through the password file the first wrote into the pod's
// memory volume, verify (and in dev the seed). The second run applies nothing.
func (c *contractRun) migrateJob(t *testing.T) {
	for run := 1; run <= 2; run++ {
		pod := c.cluster.newPod(t, fmt.Sprintf("database-migrate-%d", run), testkit.TypedPod(t, c.r.Object(t, testkit.Job, "database-migrate")), nil)
		c.runToEnd(t, pod, "bootstrap", 2*time.Minute)
		migrate := c.runToEnd(t, pod, "migrate", 2*time.Minute)
		verify := c.runToEnd(t, pod, "verify", time.Minute)
		assert.Contains(t, verify.Output(), pgtest.VerifiedClean(t))
		if run == 1 {
			assert.Contains(t, migrate.Output(), "3/u order_path_speed")
		} else {
			assert.NotContains(t, migrate.Output(), "/u ", "a second run applies nothing")
		}
	}
	assert.Equal(t, pgtest.VersionRow(t), c.psql(t, "SELECT version || '|' || dirty FROM migrations.schema_migrations"))
	c.products = c.psql(t, "SELECT count(*) FROM shop.products")
}

// psql runs one statement in the database pod's postgres container and returns its output.
func (c *contractRun) psql(t *testing.T, sql string) string {
	t.Helper()
	code, out := c.postgres.exec(10*time.Second, "psql", "--username=ecommerce", "--dbname=ecommerce", "--no-psqlrc", "-At", "-c", sql)
	require.Zerof(t, code, "psql %s: %s", sql, out)
	return strings.TrimSpace(out)
}

// runToEnd runs one of pod's containers that is meant to finish (an init container, a Job's)
// within timeout, requires exit 0 and counts the container as run.
func (c *contractRun) runToEnd(t *testing.T, pod *sandboxPod, name string, timeout time.Duration) *ctr {
	t.Helper()
	run := pod.start(t, name)
	code := run.wait(timeout)
	require.Zerof(t, code, "%s in pod %s exited %d:\n%s", name, pod.Name, code, run.Output())
	c.ran.add(name)
	return run
}

// credentialsJob runs the database-credentials Job twice: it sets the API password and the signing key, and is safe to repeat.
func (c *contractRun) credentialsJob(t *testing.T) {
	for run := 1; run <= 2; run++ { // and again: it is safe to repeat
		pod := c.cluster.newPod(t, fmt.Sprintf("database-credentials-%d", run), testkit.TypedPod(t, c.r.Object(t, testkit.Job, "database-credentials")), nil)
		job := c.runToEnd(t, pod, "credentials-sync", 2*time.Minute)
		assert.Contains(t, job.Output(), "are current")
	}
	assert.Equal(t, "1", c.psql(t, "SELECT count(*) FROM shop.jwt_keys WHERE secret = '"+testkit.TestSecrets["jwtSecret"]+"'"))
	// The monitor role's password is the credentials job's: the exporter logs in from now on.
	assert.Contains(t, contractGet(t, c.primary.IP, 9187, "/metrics"), "pg_up 1", "the exporter reaches the database with its mounted password")
}

// readReplica bootstraps database-replica-0 from the primary and checks a row streams to it.
func (c *contractRun) readReplica(t *testing.T) {
	set := c.r.Object(t, testkit.StatefulSet, "database-replica")
	pod := c.cluster.newPod(t, "database-replica-0", testkit.TypedPod(t, set), map[string]string{"data": "data-database-replica-0"})
	boot := c.runToEnd(t, pod, "replica-bootstrap", 2*time.Minute)
	assert.Contains(t, boot.Output(), "copying the primary")
	replica := pod.start(t, "postgres")
	c.timings["replica postgres"] = replica.awaitStarted(t)
	replica.requireReadyAndLive(t)
	exporter := pod.start(t, "postgres-exporter")
	exporter.awaitStarted(t)
	exporter.requireReadyAndLive(t)
	c.psql(t, "INSERT INTO shop.products (name, price, stock) VALUES ('streamed to the replica', 1, 1)")
	assert.Eventually(t, func() bool {
		code, out := replica.exec(10*time.Second, "psql", "--host=/var/run/postgresql", "--username=ecommerce",
			"--dbname=ecommerce", "--no-psqlrc", "-At", "-c", "SELECT count(*) FROM shop.products WHERE name = 'streamed to the replica'")
		return code == 0 && strings.TrimSpace(out) == "1"
	}, 30*time.Second, 100*time.Millisecond, "the row reaches the replica")
	c.psql(t, "DELETE FROM shop.products WHERE name = 'streamed to the replica'")

	// The pod restarts: its init container runs again on the data it left, asks the primary
	// (the slot is there and in use) and resumes instead of copying.
	again := c.runToEnd(t, pod, "replica-bootstrap", time.Minute)
	assert.Contains(t, again.Output(), "holds a database; resuming from slot database_replica_0 (reserved)")
}

// backendPod runs the backend pod's init container against the database pod, then PgBouncer, through a SIGKILL and a restart in the same pod.
func (c *contractRun) backendPod(t *testing.T) {
	backend := c.cluster.newPod(t, "backend-0", testkit.TypedPod(t, c.r.Object(t, testkit.Deployment, "backend")), nil)
	start := time.Now()
	wait := c.runToEnd(t, backend, "wait-for-database", 2*time.Minute)
	assert.Contains(t, wait.Output(), "accepts connections")
	c.timings["wait-for-database"] = time.Since(start)

	pool := backend.start(t, "pgbouncer")
	c.timings["pgbouncer"] = pool.awaitStarted(t)
	pool.requireReadyAndLive(t)
	c.ran.add("pgbouncer")
	apiPassword := testkit.TestSecrets["apiDbPassword"]
	query := func(c *ctr) (int, string) {
		return c.execEnv([]string{"PGPASSWORD=" + apiPassword}, 10*time.Second, "psql",
			"host=127.0.0.1 port=6432 dbname=ecommerce user=authenticator", "--no-psqlrc", "-qAt",
			"-c", "SET ROLE web_anon; SELECT count(*) FROM api.products")
	}
	code, out := query(pool)
	require.Zerof(t, code, "a query through PgBouncer: %s", out)
	assert.Equal(t, c.products, strings.TrimSpace(out))

	// An unclean kill (OOM, SIGKILL at the end of the grace period), then the kubelet
	// starts the container again in the same pod, with the same volumes.
	pool.signal(syscall.SIGKILL)
	require.NotEqual(t, -1, pool.wait(10*time.Second), "SIGKILL ends PgBouncer")
	again := backend.start(t, "pgbouncer")
	c.timings["pgbouncer after SIGKILL"] = again.awaitStarted(t)
	again.requireReadyAndLive(t)
	code, out = query(again)
	require.Zerof(t, code, "a query after the restart: %s", out)
}

// backupRoundTrip runs the backup job and restores its dump with the README's command.
func (c *contractRun) backupRoundTrip(t *testing.T) {
	job := c.r.Object(t, testkit.CronJob, "database-backup")
	backupPod := c.cluster.newPod(t, "database-backup-1", testkit.TypedPod(t, job), nil)
	dump := c.runToEnd(t, backupPod, "pg-dump", 2*time.Minute)
	claim := backupPod.volumes["backups"]
	dumps, err := filepath.Glob(filepath.Join(claim, "ecommerce-*.dump"))
	require.NoError(t, err)
	require.Len(t, dumps, 1, "one dump in the backup claim:\n%s", dump.Output())

	// The README's restore procedure: a pod of the postgres image with the backup volume
	// and the credentials, running assets.RestoreCommand.
	c.psql(t, "INSERT INTO shop.products (name, price, stock) VALUES ('written after the backup', 1, 1)")
	restore := contractRestorePod(t, c.cluster, c.r, job, filepath.Join(database.BackupDir, filepath.Base(dumps[0])))
	c.runToEnd(t, restore, "pg-dump", 2*time.Minute)
	assert.Equal(t, c.products, c.psql(t, "SELECT count(*) FROM shop.products"), "the restore brings back the dumped rows exactly")
}

// backupFailures: a wrong password and a missing file each fail with a message naming them.
func (c *contractRun) backupFailures(t *testing.T) {
	job := testkit.TypedPod(t, c.r.Object(t, testkit.CronJob, "database-backup"))
	// The job's own role and password file, as recorded (shop_backup, backup-password).
	env := testkit.EnvOf(testkit.TypedContainer(t, job.Spec, "pg-dump"))
	role, passwordFile := env["PGUSER"], env["PGPASSWORD_FILE"]
	require.NotEmpty(t, role)
	require.NotEmpty(t, passwordFile)
	wrong := c.cluster.newPod(t, "database-backup-wrong", job, nil)
	require.NoError(t, os.WriteFile(filepath.Join(wrong.volumes["secrets"], filepath.Base(passwordFile)), []byte("not-the-password"), 0o440))
	dump := wrong.start(t, "pg-dump")
	assert.NotZero(t, dump.wait(time.Minute))
	assert.Contains(t, dump.Output(), fmt.Sprintf("password authentication failed for user %q", role))

	missing := c.cluster.newPod(t, "database-backup-missing", job, nil)
	require.NoError(t, os.Remove(filepath.Join(missing.volumes["secrets"], filepath.Base(passwordFile))))
	dump = missing.start(t, "pg-dump")
	assert.NotZero(t, dump.wait(time.Minute))
	assert.Contains(t, dump.Output(), "cannot read PGPASSWORD_FILE "+passwordFile)
}

// releaseUnpaid runs the release-unpaid CronJob's pod against the database pod: an order
// placed two hours ago and never paid is cancelled and its unit is back in stock; the order
// limit the credentials Job wrote is in the database.
func (c *contractRun) releaseUnpaid(t *testing.T) {
	assert.Equal(t, "40", c.psql(t, "SELECT max_open_units FROM shop.order_limits"), "the credentials Job wrote orderMaxOpenUnits")
	c.psql(t, "INSERT INTO shop.users (email, name, password_hash) VALUES ('unpaid@example.com', 'Unpaid', 'unpaid-password-1')")
	c.psql(t, "INSERT INTO shop.products (name, price, stock) VALUES ('held unpaid', 1, 1)")
	c.psql(t, `SELECT shop.place_order((SELECT id FROM shop.users WHERE email = 'unpaid@example.com'),
		jsonb_build_array(jsonb_build_object('product_id', (SELECT id FROM shop.products WHERE name = 'held unpaid'), 'quantity', 1)))`)
	c.psql(t, "UPDATE shop.orders SET created_at = now() - interval '2 hours'")
	require.Equal(t, "0", c.psql(t, "SELECT stock FROM shop.products WHERE name = 'held unpaid'"))

	job := c.r.Object(t, testkit.CronJob, "database-release-unpaid")
	pod := c.cluster.newPod(t, "database-release-unpaid-1", testkit.TypedPod(t, job), nil)
	run := c.runToEnd(t, pod, "release-unpaid", 2*time.Minute)
	assert.Contains(t, run.Output(), "release-unpaid: released ")
	assert.Equal(t, "1", c.psql(t, "SELECT stock FROM shop.products WHERE name = 'held unpaid'"), "the unit is back")
	assert.Equal(t, "cancelled", c.psql(t, `SELECT string_agg(DISTINCT o.status, ',') FROM shop.orders o
		JOIN shop.users u ON u.id = o.user_id WHERE u.email = 'unpaid@example.com'`))
}

// frontendPods runs both colors' nginx and exporter, the promotion check for the active color, a bounded log burst and the preStop hook.
func (c *contractRun) frontendPods(t *testing.T) {
	for _, color := range []string{components.Blue, components.Green} {
		deployment := c.r.Object(t, testkit.Deployment, "frontend-"+color)
		pod := c.cluster.newPod(t, "frontend-"+color+"-0", testkit.TypedPod(t, deployment), nil)
		nginx := pod.start(t, "nginx")
		c.timings["nginx "+color] = nginx.awaitStarted(t)
		nginx.requireReadyAndLive(t)
		c.ran.add("nginx")
		metrics := pod.start(t, "metrics-exporter")
		c.timings["metrics-exporter "+color] = metrics.awaitStarted(t)
		metrics.requireReadyAndLive(t)
		c.ran.add("metrics-exporter")
		exported := testkit.Samples(t, contractGet(t, pod.IP, 9113, "/metrics"))
		assert.Equal(t, 1.0, exported["nginx_up"])
		for _, name := range testkit.MonitoredMetrics(t, testkit.OperatorRun(t, c.stack, nil), "nginx_") {
			assert.Contains(t, exported, name, "an alert or the dashboard uses %s (Debian's exporter 0.11 here)", name)
		}
		assert.Equal(t, color, contractGet(t, pod.IP, components.FrontendPort, "/release/color"))
		if c.stack == "prod" {
			contractHTTPS(t, pod.IP)
		}
		if color == components.Blue { // the active color: its promotion check runs now
			contractPromotionCheck(t, c.cluster, c.r)
			c.ran.add("promotion-check")
		}

		// A bounded burst: nothing it logs lands in the pod's writable volumes.
		// Its requests carry their own query so earlier requests (the
		// promotion check's) do not count towards it.
		before := contractWritable(t, pod)
		const burst = 2000
		const burstURI = "/release/version?burst"
		for i := 0; i < burst; i++ {
			contractGet(t, pod.IP, components.FrontendPort, burstURI)
		}
		grown := contractWritable(t, pod) - before
		assert.Less(t, grown, int64(64<<10), "%d requests grew the pod's writable volumes by %d bytes", burst, grown)
		assert.Eventually(t, func() bool { return strings.Count(nginx.Output(), `"uri":"`+burstURI+`"`) == burst },
			30*time.Second, 50*time.Millisecond, "every request is in the container log (stdout)")

		grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		took := nginx.preStop(t, grace)
		assert.NotEqual(t, time.Duration(-1), took, "nginx stops within its grace period after preStop")
		c.timings["nginx preStop "+color] = took
	}
}

// notRunListing names every container not run here with what covers it, and requires every runnable one to have run.
func (c *contractRun) notRunListing(t *testing.T) {
	var notRun []string
	for _, w := range c.r.Workloads() {
		for _, container := range testkit.TypedContainers(testkit.TypedPod(t, w).Spec) {
			img, ok := contractImageOf(container.Image)
			require.Truef(t, ok, "%s (%s): the contract suite must know this image", container.Name, container.Image)
			if img.Runnable {
				assert.Truef(t, c.ran.set[container.Name] && c.cluster.started[container.Name+"@"+container.Image],
					"%s/%s (%s) is runnable here but did not run", w.K8sName(), container.Name, container.Image)
				require.NotEmptyf(t, img.Note, "%s: say how this machine's program differs from the image's", container.Image)
				t.Logf("ran: %s/%s (%s): %s", w.K8sName(), container.Name, container.Image, img.Note)
				continue
			}
			require.NotEmpty(t, img.Covered)
			notRun = append(notRun, container.Name)
			t.Logf("not run: %s/%s (%s): %s", w.K8sName(), container.Name, container.Image, img.Covered)
		}
	}
	sort.Strings(notRun)
	assert.Equal(t, []string{"envoy", "log-collector", "log-collector", "postgrest"}, notRun)
}

// contractRestorePod is the backup job's pod with its container running the README's restore
// command (assets.RestoreCommand) on one dump instead of backup.sh.
func contractRestorePod(t *testing.T, cluster *sandboxCluster, r testkit.Run, job testkit.Recorded, dump string) *sandboxPod {
	t.Helper()
	tmpl := testkit.TypedPod(t, job)
	c := &tmpl.Spec.Containers[0]
	c.Command = []string{"sh", "-c", `PGPASSWORD=$(cat "$PGPASSWORD_FILE") && export PGPASSWORD && ` + assets.RestoreCommand}
	// As docs/durability.md says: the superuser's credentials, not the backup role's (it reads
	// the shop and owns nothing; the restore recreates objects owned by api_owner).
	superuser := testkit.TypedSecret(t, r, "database-credentials").StringData["username"]
	require.NotEmpty(t, superuser)
	secrets := filepath.Dir(testkit.EnvOf(*c)["PGPASSWORD_FILE"])
	for i := range c.Env {
		switch c.Env[i].Name {
		case "PGUSER":
			c.Env[i].Value = superuser
		case "PGPASSWORD_FILE":
			c.Env[i].Value = filepath.Join(secrets, "superuser-password")
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "DUMP", Value: dump})
	pod := cluster.newPod(t, "database-restore", tmpl, nil)
	// Beside the job's own key, owned as the sandbox owns a Secret's files (the pod's group).
	own, err := os.Stat(filepath.Join(pod.volumes["secrets"], filepath.Base(testkit.EnvOf(testkit.TypedPod(t, job).Spec.Containers[0])["PGPASSWORD_FILE"])))
	require.NoError(t, err)
	path := filepath.Join(pod.volumes["secrets"], "superuser-password")
	require.NoError(t, os.WriteFile(path, []byte(testkit.TestSecrets["dbPassword"]), own.Mode().Perm()))
	st := own.Sys().(*syscall.Stat_t)
	require.NoError(t, os.Chown(path, int(st.Uid), int(st.Gid)))
	return pod
}

// contractGet is an HTTP GET to a pod's address that must answer 200; it returns the body.
func contractGet(t testing.TB, ip string, port int, path string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s:%d%s", ip, port, path))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equalf(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	return string(b)
}

// contractWritable is the size of everything in a pod's writable volumes.
func contractWritable(t testing.TB, p *sandboxPod) int64 {
	t.Helper()
	var total int64
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil || v.PersistentVolumeClaim != nil {
			total += dirSize(t, p.volumes[v.Name])
		}
	}
	return total
}

// contractHTTPS checks nginx's HTTPS listener with the mounted certificate: HSTS on every
// answer, and the redirect port sends plain HTTP there.
func contractHTTPS(t testing.TB, ip string) {
	t.Helper()
	client := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(fmt.Sprintf("https://%s:%d/release/color", ip, components.FrontendTLSPort))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Strict-Transport-Security"))
	resp, err = client.Get(fmt.Sprintf("http://%s:%d/", ip, components.FrontendRedirectPort))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusPermanentRedirect, resp.StatusCode)
}

// contractPromotionCheck runs the promotion check Job's pod against the active color through
// its preview Service (port 80 to nginx's 8080). Everything the frontend serves itself passes;
// the API cannot (PostgREST and Envoy do not run here, so nginx answers 502), and the check
// must say exactly that, and fail.
func contractPromotionCheck(t *testing.T, cluster *sandboxCluster, r testkit.Run) {
	t.Helper()
	job := testkit.TypedPod(t, r.Object(t, testkit.Job, "frontend-promotion-check"))
	pod := cluster.newPod(t, "frontend-promotion-check-1", job, nil)
	check := pod.start(t, "promotion-check")
	code := check.wait(2 * time.Minute)
	assert.Equal(t, 1, code, "the check fails on an API that cannot answer:\n%s", check.Output())
	assert.Contains(t, check.Output(), "promotion check FAILED for blue at http://frontend-blue-preview:80: /api/health answered 502",
		"/health, the dashboard, /release/color and /release/version passed first")
}

// archiverPod runs database-archiver-0 with its claim: pg_receivewal streams (ready: a
// segment is open in the archive), the base-backup loop takes its first backup at once and
// only a verified one counts; where the stack copies off site, the copy reaches the bucket.
func (c *contractRun) archiverPod(t *testing.T) {
	set := c.r.Object(t, testkit.StatefulSet, "database-archiver")
	pod := c.cluster.newPod(t, "database-archiver-0", testkit.TypedPod(t, set), map[string]string{"archive": "archive-database-archiver-0"})
	receiver := pod.start(t, "wal-receiver")
	c.timings["wal-receiver"] = receiver.awaitStarted(t)
	receiver.requireReadyAndLive(t)
	c.ran.add("wal-receiver")
	assert.Equal(t, "streaming", c.psql(t, "SELECT state FROM pg_stat_replication WHERE application_name = '"+database.ArchiverSlot+"'"))

	backups := pod.start(t, "base-backup")
	c.timings["base-backup"] = backups.awaitStarted(t)
	c.ran.add("base-backup")
	verified := func() []string {
		names, _ := filepath.Glob(filepath.Join(pod.volumes["archive"], "base", "20*Z"))
		return names
	}
	// The script renames the backup into place, then logs the verification: wait for both
	// (a CI run read the output between the two).
	for deadline := time.Now().Add(2 * time.Minute); len(verified()) == 0 || !strings.Contains(backups.Output(), "verified against its manifest"); time.Sleep(500 * time.Millisecond) {
		require.False(t, time.Now().After(deadline), "no verified base backup after 2 min:\n%s", backups.Output())
	}
	backups.requireReadyAndLive(t) // ready: a current verified backup exists
	c.archiveMetrics(t, pod, verified)
	if c.store == nil {
		return
	}
	offsite := pod.start(t, "offsite-sync")
	c.timings["offsite-sync"] = offsite.awaitStarted(t)
	c.ran.add("offsite-sync")
	objects := ""
	// A copy sends files in parallel: wait until both the backup and the WAL are there (read
	// through the crypt remote: the bucket holds encrypted names).
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(objects, "/backup_manifest") || !strings.Contains(objects, "wal/"); time.Sleep(2 * time.Second) {
		require.False(t, time.Now().After(deadline), "nothing in the bucket after 2 min:\n%s", offsite.Output())
		objects = strings.Join(c.store.Decrypted(t, c.stack, testkit.TestSecrets["databaseOffsiteEncryptionKey"]), "\n")
	}
	assert.Contains(t, objects, "/backup_manifest", "the verified base backup is in the bucket")
	assert.Contains(t, objects, "wal/", "the WAL is in the bucket")
	for deadline := time.Now().Add(time.Minute); offsite.check(offsite.Spec.ReadinessProbe) != nil; time.Sleep(time.Second) {
		require.False(t, time.Now().After(deadline), "offsite-sync not ready after its first copy:\n%s", offsite.Output())
	}
	offsite.requireReadyAndLive(t) // ready: the last copy succeeded
	// The offsite loop writes the metrics after each copy: its time is there.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		samples := testkit.Samples(t, contractGet(t, pod.IP, 9188, "/metrics"))
		if at, ok := samples["archive_offsite_last_success_timestamp_seconds"]; ok && at > float64(time.Now().Add(-2*time.Minute).Unix()) {
			break
		}
		require.False(t, time.Now().After(deadline), "no recent off-site copy in the archiver's metrics: %v", samples)
	}
	// While the archiver runs: a new stack's primary recovers from what it copied.
	t.Run("a primary recovers from the off-site archive alone", c.recoveredPrimary)
}

// archiveMetrics runs the archiver's metrics container (nginx with its deployed conf): it
// serves the file the base-backup loop wrote, with the newest verified backup's time; and
// the primary's exporter (with the deployed queries) sees the archiver streaming.
func (c *contractRun) archiveMetrics(t *testing.T, pod *sandboxPod, verified func() []string) {
	metrics := pod.start(t, "metrics")
	c.timings["archive metrics"] = metrics.awaitStarted(t)
	metrics.requireReadyAndLive(t)
	c.ran.add("metrics")
	newest := verified()[len(verified())-1]
	made, err := time.Parse("20060102T150405Z", filepath.Base(newest))
	require.NoError(t, err)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		samples := testkit.Samples(t, contractGet(t, pod.IP, 9188, "/metrics"))
		if samples["archive_base_backup_last_verified_timestamp_seconds"] == float64(made.Unix()) {
			assert.GreaterOrEqual(t, samples["archive_base_backups_verified"], 1.0)
			break
		}
		require.False(t, time.Now().After(deadline), "the archiver's metrics do not show backup %s: %v", newest, samples)
	}
	exported := testkit.Samples(t, contractGet(t, c.primary.IP, 9187, "/metrics"))
	assert.Equal(t, 1.0, testkit.SampleNamed(t, exported, "pg_archiver_streaming", `slot_name="`+database.ArchiverSlot+`"`))
	assert.Less(t, testkit.SampleNamed(t, exported, "pg_archiver_lag_bytes"), float64(16<<20))
}

// recoveredPrimary is a new stack's primary with databaseRecoverFrom the bucket: its init
// containers fetch the archive and lay out the base backup on an empty claim, and postgres
// recovers to the latest WAL and serves the same shop.
func (c *contractRun) recoveredPrimary(t *testing.T) {
	// A marker of its own, so the shop's rows the later subtests count stay as they were.
	c.psql(t, "CREATE TABLE public.durability_marker AS SELECT 'before-the-loss'::text AS note")
	t.Cleanup(func() { c.psql(t, "DROP TABLE public.durability_marker") })
	c.psql(t, "SELECT pg_switch_wal()")
	time.Sleep(2 * time.Second) // the archiver has the segment; the next copy takes it off site
	set := c.r.Object(t, testkit.StatefulSet, "database-archiver")
	offsite := testkit.TypedContainer(t, testkit.TypedPod(t, set).Spec, "offsite-sync")
	interval, err := time.ParseDuration(testkit.EnvOf(offsite)["INTERVAL_SECONDS"] + "s")
	require.NoError(t, err)
	time.Sleep(interval + 5*time.Second)

	overrides := map[string]string{
		"databaseOffsiteEndpoint": c.store.Endpoint(objectStoreHost), "databaseOffsiteAllowInsecureHttp": "true", "databaseOffsiteBucket": s3test.Bucket,
		"offsiteAccessKeyId": s3test.AccessKey, "offsiteSecretAccessKey": s3test.SecretKey,
		"databaseOffsitePrefix": c.stack + "-recovered", "databaseRecoverFrom": "s3://" + s3test.Bucket + "/" + c.stack,
	}
	if c.primary.token != "" { // a recovery bootstraps a single primary: Patroni is off for it (docs/failover.md)
		overrides["databaseFailover"] = "false"
	}
	recovering := testkit.MustRun(t, c.stack, overrides)
	tmpl := testkit.TypedPod(t, recovering.Object(t, testkit.StatefulSet, "database"))
	pod := c.cluster.newPod(t, "database-recovered-0", tmpl, map[string]string{"data": "data-database-recovered-0"})
	for _, name := range []string{"recovery-fetch", "recovery-bootstrap"} {
		c.runToEnd(t, pod, name, 3*time.Minute)
	}
	postgres := pod.start(t, "postgres")
	c.timings["postgres (recovered)"] = postgres.awaitStarted(t)
	postgres.requireReadyAndLive(t)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		code, out := postgres.exec(10*time.Second, "psql", "--username=ecommerce", "--dbname=ecommerce", "--no-psqlrc", "-At",
			"-c", "SELECT pg_is_in_recovery(), (SELECT count(*) FROM public.durability_marker WHERE note = 'before-the-loss')")
		if code == 0 && strings.TrimSpace(out) == "f|1" {
			break
		}
		require.False(t, time.Now().After(deadline), "the recovered primary: %s\n%s", out, postgres.Output())
	}
}
