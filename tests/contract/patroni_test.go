package contract

// The database members under Patroni (databaseFailover, on in prod), as the kubelet runs them:
// Patroni (the image's command) on the recorded patroni.yml, as uid 1000 with no passwd entry
// (initdb and pg_basebackup learn the name through the image's nss_wrapper and the ConfigMap's
// passwd file), read-only root, probes on Patroni's REST API, and Patroni's Kubernetes store
// in the sandbox's API server under the members' ServiceAccount token and the recorded Role:
// the first member initializes the cluster, takes the leader lock and labels its pod
// role=primary (database-service follows); the second clones it, streams in its quorum and is
// labelled role=replica (database-readonly follows).

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"ecommerce-platform/tests/testkit"
)

// patroniConfig is where the members mount patroni.yml (the command's argument).
const patroniConfig = "/etc/patroni/patroni.yml"

// refused matches an API call the server refused in Patroni's log: the status 403 or its
// reason. Not a 403 after a comma or a digit: Patroni stamps every line with milliseconds
// ("21:55:44,403"), and a CI run failed on one.
var refused = regexp.MustCompile(`(?m)(?:^|[^,\d])403\b|Forbidden`)

// awaitRole waits until Patroni has labelled the member's pod object with role (the label the
// database Services select) and returns the time since the container started.
func (c *contractRun) awaitRole(t *testing.T, pod *sandboxPod, member *ctr, role string, started time.Time) time.Duration {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if c.cluster.api.labels(t, pod.Name)["role"] == role {
			return time.Since(started)
		}
		require.False(t, member.Exited(), "%s exited:\n%s", pod.Name, member.Output())
		require.False(t, time.Now().After(deadline), "%s not labelled role=%s after 2 min:\n%s", pod.Name, role, member.Output())
	}
}

// awaitReady polls the readiness probe, as the kubelet does after the startup probe passed,
// until it passes (a container that is not ready is not restarted, only left out of its
// Services).
func (c *ctr) awaitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	p := c.Spec.ReadinessProbe
	require.NotNil(t, p, "%s readiness probe", c.Name)
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Duration(min(p.PeriodSeconds, 1)) * time.Second) {
		require.False(t, c.Exited(), "%s/%s exited:\n%s", c.Pod.Name, c.Name, c.Output())
		if last = c.check(p); last == nil {
			return
		}
	}
	require.FailNowf(t, "not ready", "%s/%s after %s: %v\n%s", c.Pod.Name, c.Name, timeout, last, c.Output())
}

// patroniLeader checks the first member as it leads: who it runs as, its read-only root, the
// leader lock in the API server, what its token may and may not do, that none of Patroni's
// calls was refused, and the documented patronictl command inside the container.
func (c *contractRun) patroniLeader(t *testing.T, pod *sandboxPod) {
	t.Helper()
	out := c.mustExec(t, c.postgres, "id", "-u")
	assert.Equal(t, "1000", out, "the member runs as the pod's uid")
	assert.Equal(t, "0", c.mustExec(t, c.postgres, "sh", "-c", "grep -c ':1000:' /etc/passwd || true"), "the image has no passwd entry for it")
	assert.True(t, strings.HasPrefix(c.mustExec(t, c.postgres, "getent", "passwd", "1000"), "postgres:x:1000:1000:"),
		"nss_wrapper (LD_PRELOAD) names it from the ConfigMap's passwd file")
	info, err := os.Stat(filepath.Join(pod.volumes["data"], "pgdata", "PG_VERSION"))
	require.NoError(t, err, "Patroni's initdb made the data directory in the claim")
	assert.EqualValues(t, 1000, info.Sys().(*syscall.Stat_t).Uid)
	code, touched := c.postgres.exec(5*time.Second, "touch", "/root-write-check")
	assert.NotZero(t, code)
	assert.Contains(t, touched, "Read-only file system")

	api := c.cluster.api
	leader := c.patroniConfigMap(t, "-leader")
	var lock corev1.ConfigMap
	api.get(t, api.path("configmaps/"+leader), &lock)
	assert.Equal(t, pod.Name, lock.Annotations["leader"], "the leader lock (%s)", leader)

	// The token the container reads: the members' account, bound to the recorded Role, RBAC
	// enforced by the API server.
	token := podToken(t, pod)
	for _, call := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, api.path("configmaps/" + leader), http.StatusOK},
		{http.MethodGet, api.path("pods"), http.StatusOK},
		{http.MethodDelete, api.path("configmaps/" + leader), http.StatusForbidden}, // nothing may delete
		{http.MethodDelete, api.path("pods/" + pod.Name), http.StatusForbidden},
		{http.MethodGet, api.path("secrets/database-credentials"), http.StatusForbidden},
		{http.MethodGet, api.path("configmaps/database-config"), http.StatusForbidden}, // the program's own ConfigMaps
		{http.MethodGet, "/api/v1/namespaces/default/configmaps", http.StatusForbidden},
	} {
		assert.Equal(t, call.status, api.asToken(t, token, call.method, call.path), "%s %s with the member's token", call.method, call.path)
	}
	assert.NotRegexp(t, refused, c.postgres.Output(), "none of Patroni's API calls was refused")

	list := c.mustExec(t, c.postgres, "patronictl", "-c", patroniConfig, "list")
	assert.Regexp(t, `database-0 .*\| Leader .*\| running`, list, "docs/failover.md's patronictl command, inside the container")
}

// secondMember starts database-1: Patroni clones the leader (pg_basebackup as the replication
// user) and streams from it; the leader counts it in its quorum; a row written on the leader
// is read on it; the Services select by the labels Patroni set.
func (c *contractRun) secondMember(t *testing.T) {
	set := c.r.Object(t, testkit.StatefulSet, "database")
	pod := c.cluster.newPod(t, "database-1", testkit.TypedPod(t, set), map[string]string{"data": "data-database-1"})
	started := time.Now()
	member := pod.start(t, "postgres")
	c.member = member
	c.timings["patroni: database-1 started (startup probe)"] = member.awaitStarted(t)
	member.awaitReady(t, 2*time.Minute)
	member.requireReadyAndLive(t)
	c.timings["patroni: database-1 labelled replica"] = c.awaitRole(t, pod, member, "replica", started)
	t.Run("a second member clones the leader, streams in its quorum and is selected by database-readonly", func(t *testing.T) {
		const streaming = "SELECT state || '|' || sync_state FROM pg_stat_replication WHERE application_name = 'database-1'"
		for deadline := time.Now().Add(time.Minute); c.psql(t, streaming) != "streaming|quorum"; time.Sleep(200 * time.Millisecond) {
			require.False(t, time.Now().After(deadline), "database-1 not streaming in the quorum: %q\n%s", c.psql(t, streaming), member.Output())
		}
		c.timings["patroni: database-1 streaming in the quorum"] = time.Since(started)
		c.psql(t, "CREATE TABLE public.member_marker AS SELECT 'from-the-leader'::text AS note")
		t.Cleanup(func() { c.psql(t, "DROP TABLE public.member_marker") })
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			code, out := member.exec(10*time.Second, "psql", "--username=ecommerce", "--dbname=ecommerce", "--no-psqlrc", "-At",
				"-c", "SELECT pg_is_in_recovery(), (SELECT note FROM public.member_marker)")
			if code == 0 && strings.TrimSpace(out) == "t|from-the-leader" {
				break
			}
			require.False(t, time.Now().After(deadline), "the member does not read the leader's row: %s", out)
		}
		// patronictl reads the quorum from Patroni's sync ConfigMap, which the leader writes on
		// its next loop after PostgreSQL counts the standby (loop_wait 5 s): asked until then.
		quorum := regexp.MustCompile(`database-1 .*\| (Quorum|Sync) Standby .*\| streaming`)
		list := ""
		for deadline := time.Now().Add(30 * time.Second); !quorum.MatchString(list); time.Sleep(500 * time.Millisecond) {
			require.False(t, time.Now().After(deadline), "patronictl never listed database-1 as a quorum standby:\n%s", list)
			list = c.mustExec(t, c.postgres, "patronictl", "-c", patroniConfig, "list")
		}
		api := c.cluster.api
		primary, replica := api.labels(t, "database-0"), api.labels(t, "database-1")
		for svc, want := range map[string]map[string]string{"database-service": primary, "database-readonly": replica} {
			s := testkit.TypedService(t, c.r, svc)
			assert.Truef(t, testkit.Selects(s.Spec.Selector, want), "%s selects the member Patroni labelled for it", svc)
		}
		assert.False(t, testkit.Selects(testkit.TypedService(t, c.r, "database-service").Spec.Selector, replica), "database-service does not select the replica")
		assert.NotRegexp(t, refused, member.Output(), "none of Patroni's API calls was refused")
	})
}

// patroniConfigMap is the one of Patroni's ConfigMaps the recorded Role names with suffix.
func (c *contractRun) patroniConfigMap(t *testing.T, suffix string) string {
	t.Helper()
	for _, r := range c.r.OfType(testkit.Role) {
		role := testkit.DecodeAs[rbacv1.Role](t, r.Inputs)
		for _, rule := range role.Rules {
			for _, name := range rule.ResourceNames {
				if strings.HasSuffix(name, suffix) && strings.Contains(strings.Join(rule.Resources, ","), "configmaps") {
					return name
				}
			}
		}
	}
	require.FailNowf(t, "no ConfigMap in the recorded Role", "suffix %s", suffix)
	return ""
}

// mustExec runs a command in a container, requires exit 0 and returns its trimmed output.
func (c *contractRun) mustExec(t *testing.T, in *ctr, argv ...string) string {
	t.Helper()
	code, out := in.exec(30*time.Second, argv...)
	require.Zerof(t, code, "%v in %s: %s", argv, in.Name, out)
	return strings.TrimSpace(out)
}

// leaderStops stops database-0's Patroni as the kubelet stops a container (its preStop hook
// if any, SIGTERM, SIGKILL after the pod's grace period): Patroni stops PostgreSQL and releases
// the leader lock through the API server, and database-1, in its quorum, takes the lock and
// labels its pod role=primary, well before the lock's ttl would have run out.
func (c *contractRun) leaderStops(t *testing.T) {
	grace := time.Duration(*c.primary.Spec.TerminationGracePeriodSeconds) * time.Second
	started := time.Now()
	took := c.postgres.preStop(t, grace)
	require.NotEqual(t, time.Duration(-1), took, "database-0 did not stop within its grace period of %s:\n%s", grace, c.postgres.Output())
	c.timings["patroni: database-0 stopped (SIGTERM)"] = took
	c.timings["patroni: database-1 labelled primary after the stop"] = c.awaitRole(t, c.member.Pod, c.member, "primary", started)
	api := c.cluster.api
	var lock corev1.ConfigMap
	api.get(t, api.path("configmaps/"+c.patroniConfigMap(t, "-leader")), &lock)
	assert.Equal(t, "database-1", lock.Annotations["leader"])
	ttl := regexp.MustCompile(`(?m)^\s+ttl: (\d+)$`).FindStringSubmatch(testkit.TypedConfigMap(t, c.r, "database-patroni").Data["patroni.yml"])
	require.Len(t, ttl, 2, "patroni.yml's ttl")
	assert.Less(t, time.Since(started).Seconds(), float64(mustAtoi(t, ttl[1])), "the lock was handed on, not left to expire (ttl %s s)", ttl[1])
	assert.NotRegexp(t, refused.String()+`|ConnectTimeoutError`, c.postgres.Output(), "Patroni reached the API server to release the lock")
	// Patroni labels its pod primary as it takes the lock, then promotes PostgreSQL: writable
	// a moment later (under load, seconds; tests/failover measures that window).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, out := c.member.exec(10*time.Second, "psql", "--username=ecommerce", "--dbname=ecommerce", "--no-psqlrc", "-At", "-c", "SELECT pg_is_in_recovery()")
		if code == 0 && strings.TrimSpace(out) == "f" {
			break
		}
		require.False(t, time.Now().After(deadline), "database-1 is not the primary 30 s after it took the lock: %d %s", code, out)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
