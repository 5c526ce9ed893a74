package mocked

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"ecommerce-platform/tests/testkit"
)

// databaseSelector is the database members' pod selector in every stack.
var databaseSelector = map[string]string{
	"app.kubernetes.io/name": "database", "app.kubernetes.io/instance": "prod", "app.kubernetes.io/component": "database",
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for key, value := range m {
		out[key] = value
	}
	return out
}

// Prod runs its database under Patroni: one StatefulSet of the primary and both replicas as
// members, no StatefulSet of replicas beside it, and the Services select by the role Patroni
// writes on the pods, so traffic moves with the leader.
func TestFailoverProdRunsPatroniMembersAndServicesFollowTheLeader(t *testing.T) {
	r := testkit.MustRun(t, "prod", nil)
	assert.Equal(t, []string{"database", "database-archiver"}, r.Names(testkit.StatefulSet), "the members and the archiver: no StatefulSet of replicas beside the members")

	members := testkit.DecodeAs[appsv1.StatefulSet](t, r.Object(t, testkit.StatefulSet, "database").Inputs)
	require.NotNil(t, members.Spec.Replicas)
	assert.Equal(t, int32(3), *members.Spec.Replicas, "1 + databaseReplicas members")
	assert.Equal(t, databaseSelector, members.Spec.Selector.MatchLabels)
	assert.Equal(t, "database-cluster", members.Spec.Template.Labels["ecommerce-platform/patroni-cluster"], "Patroni finds its members by the scope label")
	assert.Equal(t, "database-members", members.Spec.Template.Spec.ServiceAccountName)
	require.NotNil(t, members.Spec.Template.Spec.AutomountServiceAccountToken)
	assert.True(t, *members.Spec.Template.Spec.AutomountServiceAccountToken, "Patroni needs its token for the leader lock")

	postgres := testkit.TypedContainer(t, members.Spec.Template.Spec, "postgres")
	assert.Equal(t, "percona/percona-distribution-postgresql:15.17-1", postgres.Image)
	assert.Equal(t, []string{"patroni", "/etc/patroni/patroni.yml"}, postgres.Command)
	require.NotNil(t, postgres.ReadinessProbe.HTTPGet)
	assert.Equal(t, "/readiness", postgres.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, 8008, postgres.ReadinessProbe.HTTPGet.Port.IntValue())
	assert.Equal(t, "/liveness", postgres.LivenessProbe.HTTPGet.Path)
	// A clone of the leader takes as long as the data: the kubelet must not kill it.
	assert.Equal(t, "/liveness", postgres.StartupProbe.HTTPGet.Path)
	passwords := map[string]string{}
	for _, e := range postgres.Env {
		if e.Name == "PATRONI_SUPERUSER_PASSWORD" || e.Name == "PATRONI_REPLICATION_PASSWORD" {
			assert.Emptyf(t, e.Value, "%s must come from the Secret by reference", e.Name)
			require.NotNil(t, e.ValueFrom)
			require.NotNil(t, e.ValueFrom.SecretKeyRef)
			passwords[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	assert.Equal(t, map[string]string{
		"PATRONI_SUPERUSER_PASSWORD":   "database-credentials/password",
		"PATRONI_REPLICATION_PASSWORD": "database-credentials/replication-password",
	}, passwords, "Patroni's passwords, each from its Secret key")

	// Every other pod keeps running without a token.
	for _, w := range r.Workloads() {
		if w.K8sName() == "database" {
			continue
		}
		token := testkit.TypedPod(t, w).Spec.AutomountServiceAccountToken
		require.NotNilf(t, token, "%s", w.K8sName())
		assert.Falsef(t, *token, "%s mounts a service account token", w.K8sName())
	}

	assert.Equal(t, withLabel(databaseSelector, "role", "primary"), testkit.TypedService(t, r, "database-service").Spec.Selector)
	assert.Equal(t, withLabel(databaseSelector, "role", "replica"), testkit.TypedService(t, r, "database-readonly").Spec.Selector)
	assert.Equal(t, "database-service", members.Spec.ServiceName, "the governing Service is unchanged: a StatefulSet's serviceName cannot change in place")
	assert.Equal(t, appsv1.OrderedReadyPodManagement, members.Spec.PodManagementPolicy, "podManagementPolicy cannot change in place either")
}

// Patroni's Role holds exactly what its Kubernetes store calls, narrowed to its own objects
// where the API allows, bound to the members' account only; dev (no Patroni) has no Role.
func TestFailoverRBACIsExactlyWhatPatroniCalls(t *testing.T) {
	r := testkit.MustRun(t, "prod", nil)
	assert.Equal(t, []string{"database-patroni"}, r.Names(testkit.Role))
	role := testkit.DecodeAs[rbacv1.Role](t, r.Object(t, testkit.Role, "database-patroni").Inputs)
	core := []string{""}
	assert.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: core, Resources: []string{"configmaps"}, Verbs: []string{"create", "list", "watch"}},
		{APIGroups: core, Resources: []string{"configmaps"}, Verbs: []string{"get", "patch", "update"},
			ResourceNames: []string{"database-cluster-leader", "database-cluster-config", "database-cluster-sync", "database-cluster-failover"}},
		{APIGroups: core, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: core, Resources: []string{"pods"}, Verbs: []string{"patch", "update"},
			ResourceNames: []string{"database-0", "database-1", "database-2"}},
	}, role.Rules)
	binding := testkit.DecodeAs[rbacv1.RoleBinding](t, r.Object(t, testkit.RoleBinding, "database-patroni").Inputs)
	assert.Equal(t, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "database-patroni"}, binding.RoleRef)
	require.Len(t, binding.Subjects, 1)
	assert.Equal(t, "database-members", binding.Subjects[0].Name)

	// Patroni's ConfigMaps are never the program's own: a member may patch them.
	for _, name := range role.Rules[1].ResourceNames {
		assert.NotContains(t, r.Names(testkit.ConfigMap), name)
	}

	dev := testkit.MustRun(t, "dev", nil)
	assert.Empty(t, dev.Names(testkit.Role))
	assert.Empty(t, dev.Names(testkit.RoleBinding))
	assert.NotContains(t, dev.Names(testkit.ConfigMap), "database-patroni")
}

// The members reach one another on 5432 (streaming, pg_rewind) and 8008 (Patroni's REST API)
// and the API server on its ports; nothing else is added to the database's policy.
func TestFailoverMembersPolicy(t *testing.T) {
	r := testkit.MustRun(t, "prod", nil)
	policy := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "database").Inputs)
	fromMembers := func(port int) bool {
		return slices.ContainsFunc(policy.Spec.Ingress, func(rule networkingv1.NetworkPolicyIngressRule) bool {
			return len(rule.Ports) == 1 && rule.Ports[0].Port.IntValue() == port && len(rule.From) == 1 &&
				rule.From[0].PodSelector != nil && assert.ObjectsAreEqual(databaseSelector, rule.From[0].PodSelector.MatchLabels)
		})
	}
	assert.True(t, fromMembers(5432), "members reach one another's PostgreSQL")
	assert.True(t, fromMembers(8008), "members reach one another's Patroni")
	var egressPorts []int
	for _, rule := range policy.Spec.Egress {
		require.Len(t, rule.Ports, 1)
		egressPorts = append(egressPorts, rule.Ports[0].Port.IntValue())
	}
	assert.Equal(t, []int{5432, 8008, 443, 6443}, egressPorts)
}

// patroni.yml, as deployed in the members' ConfigMap, carries the stack's timings, quorum
// and the archiver's permanent slot, and the namespace and labels the members really have.
func TestFailoverPatroniConfigFollowsStackConfig(t *testing.T) {
	r := testkit.MustRun(t, "prod", map[string]string{
		"databaseFailoverTtlSeconds": "30", "databaseFailoverLoopWaitSeconds": "4", "databaseFailoverRetryTimeoutSeconds": "7",
	})
	data := testkit.TypedConfigMap(t, r, "database-patroni").Data
	var doc struct {
		Scope      string `yaml:"scope"`
		Kubernetes struct {
			Namespace    string            `yaml:"namespace"`
			UseEndpoints bool              `yaml:"use_endpoints"`
			ScopeLabel   string            `yaml:"scope_label"`
			RoleLabel    string            `yaml:"role_label"`
			Labels       map[string]string `yaml:"labels"`
		} `yaml:"kubernetes"`
		Bootstrap struct {
			DCS struct {
				TTL                  int                       `yaml:"ttl"`
				LoopWait             int                       `yaml:"loop_wait"`
				RetryTimeout         int                       `yaml:"retry_timeout"`
				SynchronousMode      string                    `yaml:"synchronous_mode"`
				SynchronousNodeCount int                       `yaml:"synchronous_node_count"`
				Slots                map[string]map[string]any `yaml:"slots"`
			} `yaml:"dcs"`
		} `yaml:"bootstrap"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(data["patroni.yml"]), &doc))
	assert.Equal(t, "database-cluster", doc.Scope)
	assert.Equal(t, "ecommerce-platform", doc.Kubernetes.Namespace)
	assert.False(t, doc.Kubernetes.UseEndpoints)
	assert.Equal(t, "ecommerce-platform/patroni-cluster", doc.Kubernetes.ScopeLabel)
	assert.Equal(t, "role", doc.Kubernetes.RoleLabel)
	assert.Equal(t, databaseSelector, doc.Kubernetes.Labels)
	assert.Equal(t, 30, doc.Bootstrap.DCS.TTL)
	assert.Equal(t, 4, doc.Bootstrap.DCS.LoopWait)
	assert.Equal(t, 7, doc.Bootstrap.DCS.RetryTimeout)
	assert.Equal(t, "quorum", doc.Bootstrap.DCS.SynchronousMode)
	assert.Equal(t, 1, doc.Bootstrap.DCS.SynchronousNodeCount)
	assert.Equal(t, map[string]map[string]any{"database_archiver": {"type": "physical"}}, doc.Bootstrap.DCS.Slots)
	assert.Contains(t, data["passwd"], ":1000:1000:", "initdb needs the pod's uid named")

	// The postgresql.conf Patroni includes leaves synchronous_standby_names to Patroni.
	assert.Contains(t, testkit.TypedConfigMap(t, r, "database-config").Data["postgresql.conf"], "\nsynchronous_standby_names = ''\n")
}

// Bad failover settings are refused before anything is created, each with its key, all at once.
func TestFailoverBadConfigIsRefusedWithTheKeyNamed(t *testing.T) {
	r := testkit.RunProgram(t, "prod", map[string]string{
		"databaseReplicas":                    "0",
		"databaseSyncStandbys":                "0",
		"databaseFailoverTtlSeconds":          "10",
		"databaseFailoverLoopWaitSeconds":     "5",
		"databaseFailoverRetryTimeoutSeconds": "5",
		"databaseRecoverFrom":                 "s3://other/prod",
	})
	require.Error(t, r.Err)
	msg := r.Err.Error()
	for _, want := range []string{
		"databaseReplicas: 0 leaves databaseFailover nothing to fail over to",
		"databaseFailoverTtlSeconds: 10 is shorter than databaseFailoverLoopWaitSeconds + 2 x databaseFailoverRetryTimeoutSeconds = 15",
		`databaseRecoverFrom: "s3://other/prod" with databaseFailover true`,
	} {
		assert.Contains(t, msg, want)
	}
	assert.Empty(t, r.Kubernetes())

	sync := testkit.RunProgram(t, "prod", map[string]string{"databaseSyncStandbys": "2"})
	require.Error(t, sync.Err)
	assert.Contains(t, sync.Err.Error(), "databaseSyncStandbys: 2 equals the number of candidates", "Patroni counts only the members, never the archiver")
}

// Turning databaseFailover on changes the StatefulSet database in place and keeps its data:
// the fields a StatefulSet cannot change (selector, serviceName, podManagementPolicy, claim
// templates) are those of the single primary, and Patroni's data_dir is the directory
// PostgreSQL used there, on the same claim at the same path. tests/failover
// (TestFailoverTakesOverTheSinglePrimarysData) runs what Patroni then does with that data.
func TestFailoverTurnsOnInPlaceOnTheSameData(t *testing.T) {
	single := testkit.MustRun(t, "prod", map[string]string{"databaseFailover": "false"})
	patroni := testkit.MustRun(t, "prod", nil)
	before := testkit.DecodeAs[appsv1.StatefulSet](t, single.Object(t, testkit.StatefulSet, "database").Inputs)
	after := testkit.DecodeAs[appsv1.StatefulSet](t, patroni.Object(t, testkit.StatefulSet, "database").Inputs)
	assert.Equal(t, before.Spec.Selector, after.Spec.Selector)
	assert.Equal(t, before.Spec.ServiceName, after.Spec.ServiceName)
	assert.Equal(t, before.Spec.PodManagementPolicy, after.Spec.PodManagementPolicy)
	require.Len(t, before.Spec.VolumeClaimTemplates, 1)
	assert.Equal(t, before.Spec.VolumeClaimTemplates[0].Name, after.Spec.VolumeClaimTemplates[0].Name)
	assert.Equal(t, before.Spec.VolumeClaimTemplates[0].Spec, after.Spec.VolumeClaimTemplates[0].Spec)

	claim := before.Spec.VolumeClaimTemplates[0].Name
	dataDir := func(set appsv1.StatefulSet) (pgdata, mount string) {
		c := testkit.TypedContainer(t, set.Spec.Template.Spec, "postgres")
		for _, e := range c.Env {
			if e.Name == "PGDATA" {
				pgdata = e.Value
			}
		}
		for _, m := range c.VolumeMounts {
			if m.Name == claim {
				mount = m.MountPath
			}
		}
		return pgdata, mount
	}
	pgdata, mount := dataDir(before)
	require.NotEmpty(t, pgdata)
	require.NotEmpty(t, mount)
	require.True(t, strings.HasPrefix(pgdata, mount+"/"), "PGDATA %s lies on the claim mounted at %s", pgdata, mount)
	afterData, afterMount := dataDir(after)
	assert.Equal(t, mount, afterMount, "the claim is mounted where it was")
	assert.Equal(t, pgdata, afterData)
	var doc struct {
		PostgreSQL struct {
			DataDir string `yaml:"data_dir"`
		} `yaml:"postgresql"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(testkit.TypedConfigMap(t, patroni, "database-patroni").Data["patroni.yml"]), &doc))
	assert.Equal(t, pgdata, doc.PostgreSQL.DataDir, "Patroni starts on the single primary's data directory")
}

// PgBouncer reaches database-service, a headless Service whose name follows the ready
// primary, by its DNS name, and forgets an address (or the lack of one) within the cluster
// DNS's own TTL, in every stack: a failover is not lengthened by PgBouncer's 15 s defaults.
func TestFailoverPgBouncerFollowsTheServicesDNS(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		r := testkit.MustRun(t, stack, nil)
		service := testkit.TypedService(t, r, "database-service")
		assert.Equal(t, "None", service.Spec.ClusterIP, "%s: database-service is headless", stack)
		ini := testkit.TypedConfigMap(t, r, "backend-config").Data["pgbouncer.ini"]
		assert.Regexp(t, `(?m)^ecommerce = host=database-service port=5432 `, ini, stack)
		assert.Regexp(t, `(?m)^dns_max_ttl = 5$`, ini, stack)
		assert.Regexp(t, `(?m)^dns_nxdomain_ttl = 1$`, ini, stack)
	}
}
