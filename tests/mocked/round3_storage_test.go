package mocked

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ecommerce-platform/components"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/database"
	"ecommerce-platform/components/kube"
	"ecommerce-platform/tests/testkit"
)

// egressOf is a recorded NetworkPolicy's egress rules, exactly (nil: none).
func egressOf(t *testing.T, r testkit.Run, name string) []networkingv1.NetworkPolicyEgressRule {
	t.Helper()
	return testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, name).Inputs).Spec.Egress
}

// toPort is one egress rule: TCP port to the peers.
func toPort(port int, peers ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicyEgressRule {
	tcp := corev1.ProtocolTCP
	p := intstr.FromInt32(int32(port))
	return networkingv1.NetworkPolicyEgressRule{To: peers, Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}}}
}

func anyAddress() networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}
}

func namespacePeer(ns string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}
}

// archiverToPrimary is the archiver's first egress rule, whatever the storage.
func archiverToPrimary() networkingv1.NetworkPolicyEgressRule {
	return toPort(5432, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
		"app.kubernetes.io/name": "database", "app.kubernetes.io/instance": "prod", "app.kubernetes.io/component": "database"}}})
}

// Issue 27, finding 6: plain-http object storage was accepted for any host (the archive
// crossed the network in clear and objects could be replaced on the path). Now http is
// refused unless the endpoint is loopback or a cluster Service, or the new flag
// databaseOffsiteAllowInsecureHttp (off by default) accepts it; each problem names the key,
// the value and what is allowed, all of them in one run, and nothing is registered.
func TestAttackRound3PlainHTTPStorageIsRefused(t *testing.T) {
	const allowed = "use https://, a loopback endpoint (localhost, 127.0.0.1) or a cluster Service (<service>.<namespace>.svc or <service>.<namespace>.svc.cluster.local), or accept the risk with databaseOffsiteAllowInsecureHttp true"
	for _, tc := range []struct {
		name, stack string
		overrides   map[string]string
		want        []string
	}{
		{"copies over http to a public host", "prod", map[string]string{"databaseOffsiteEndpoint": "http://s3.eu-central-1.amazonaws.com"},
			[]string{`databaseOffsiteEndpoint: "http://s3.eu-central-1.amazonaws.com" is plain http to a host outside the cluster`, allowed}},
		{"a recovery over http to a private address", "dev", map[string]string{"databaseRecoverFrom": "s3://old/dev", "databaseOffsiteEndpoint": "http://10.0.0.5:9000"},
			[]string{`databaseOffsiteEndpoint: "http://10.0.0.5:9000" is plain http to a host outside the cluster`}},
		{"a name that only looks internal", "prod", map[string]string{"databaseOffsiteEndpoint": "http://minio.svc.evil.example"},
			[]string{`databaseOffsiteEndpoint: "http://minio.svc.evil.example" is plain http to a host outside the cluster`}},
		{"credentials in the URL", "prod", map[string]string{"databaseOffsiteEndpoint": "https://AKIA:s3cr3t@s3.example"},
			[]string{`databaseOffsiteEndpoint: "https://AKIA:xxxxx@s3.example" is not allowed; use a URL without user or password in it`}},
		{"every problem at once", "prod", map[string]string{"databaseOffsiteEndpoint": "http://s3.example", "databaseOffsiteAllowInsecureHttp": "maybe",
			"databaseOffsiteBucket": "B"}, []string{
			`databaseOffsiteAllowInsecureHttp: "maybe" is not allowed; use true or false`,
			`databaseOffsiteEndpoint: "http://s3.example" is plain http to a host outside the cluster`,
			`databaseOffsiteBucket: "B" is not allowed`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testkit.RunProgram(t, tc.stack, tc.overrides)
			require.Error(t, r.Err)
			for _, w := range tc.want {
				assert.Contains(t, r.Err.Error(), w)
			}
			assert.NotContains(t, r.Err.Error(), "s3cr3t", "the URL's password is not repeated")
			assert.Empty(t, r.Kubernetes(), "nothing is registered")
		})
	}
	for endpoint, overrides := range map[string]map[string]string{
		"https://s3.eu-central-1.amazonaws.com":        nil,
		"http://minio.storage.svc:9000":                nil,
		"http://minio.storage.svc.cluster.local:9000":  nil,
		"http://127.0.0.1:9000":                        nil,
		"http://localhost:9000":                        nil,
		"http://[::1]:9000":                            nil,
		"http://s3.example:9000 (the flag accepts it)": {"databaseOffsiteAllowInsecureHttp": "true"},
	} {
		url, _, _ := strings.Cut(endpoint, " ")
		o := map[string]string{"databaseOffsiteEndpoint": url}
		for k, v := range overrides {
			o[k] = v
		}
		assert.NoError(t, testkit.RunProgram(t, "prod", o).Err, endpoint)
	}
}

// Finding 6, the egress: the archiver and a recovering primary reach object storage on the
// endpoint's port only, and only where the endpoint can be: any address for an external host
// (a NetworkPolicy knows no host names), the Service's namespace for a cluster Service,
// nothing beyond the pod for loopback. Plain http to the internet's port 80 exists only with
// the flag.
func TestAttackRound3StorageEgressIsTheEndpointsOnly(t *testing.T) {
	for _, tc := range []struct {
		endpoint, insecure string
		storage            []networkingv1.NetworkPolicyEgressRule
	}{
		{"https://s3.eu-central-1.amazonaws.com", "", []networkingv1.NetworkPolicyEgressRule{toPort(443, anyAddress())}},
		{"https://minio.storage.example:9000", "", []networkingv1.NetworkPolicyEgressRule{toPort(9000, anyAddress())}},
		{"http://minio.storage.svc.cluster.local:9000", "", []networkingv1.NetworkPolicyEgressRule{toPort(9000, namespacePeer("storage"))}},
		{"http://minio.ecommerce-platform.svc", "", []networkingv1.NetworkPolicyEgressRule{toPort(80, namespacePeer("ecommerce-platform"))}},
		{"http://127.0.0.1:9000", "", nil},
		{"http://s3.example", "true", []networkingv1.NetworkPolicyEgressRule{toPort(80, anyAddress())}},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			// The single primary's policy (a recovery is refused with databaseFailover, and
			// Patroni's members reach one another and the API server: TestFailoverMembersPolicy).
			o := map[string]string{"databaseOffsiteEndpoint": tc.endpoint, "databaseFailover": "false"}
			if tc.insecure != "" {
				o["databaseOffsiteAllowInsecureHttp"] = tc.insecure
			}
			r := testkit.MustRun(t, "prod", o)
			assert.Equal(t, append([]networkingv1.NetworkPolicyEgressRule{archiverToPrimary()}, tc.storage...), egressOf(t, r, "database-archiver"), "archiver")
			assert.Empty(t, egressOf(t, r, "database"), "a primary that does not recover reaches nothing")

			o["databaseRecoverFrom"] = "s3://old-archive/prod"
			r = testkit.MustRun(t, "prod", o)
			assert.Equal(t, tc.storage, egressOf(t, r, "database"), "a recovering primary")
		})
	}
}

// Finding 6, the time: the primary's egress to object storage existed as long as
// databaseRecoverFrom was set, and nothing made the operator unset it. Now an update that
// recovered records the source in the stack output databaseRecoveredFrom (once the
// database-migrate Job, which writes to the recovered database, completed), and the next
// update, reading its own outputs back, gives the primary no egress at all; a new source (a
// recovery not yet done) gets it again.
func TestAttackRound3RecoveryEgressEndsWithTheRecovery(t *testing.T) {
	// A recovery bootstraps the single primary (databaseFailover is refused with it).
	recovering := map[string]string{"databaseRecoverFrom": "s3://old-archive/prod", "databaseOffsitePrefix": "prod-2", "databaseFailover": "false"}
	first := testkit.RunAfter(t, "prod", recovering, nil)
	assert.Equal(t, []networkingv1.NetworkPolicyEgressRule{toPort(443, anyAddress())}, egressOf(t, first, "database"), "while it recovers")

	after := map[string]any{components.RecoveredOutput: "s3://old-archive/prod"}
	second := testkit.RunAfter(t, "prod", recovering, after)
	assert.Empty(t, egressOf(t, second, "database"), "after the recovery was recorded")
	policy := testkit.DecodeAs[networkingv1.NetworkPolicy](t, second.Object(t, testkit.NetworkPolicy, "database").Inputs)
	assert.Equal(t, []networkingv1.PolicyType{"Ingress"}, policy.Spec.PolicyTypes, "egress falls to the namespace's default deny")
	assert.Len(t, testkit.TypedPod(t, second.Object(t, testkit.StatefulSet, "database")).Spec.InitContainers, 2,
		"the pod template is unchanged: the primary does not restart (its init containers leave a database alone)")

	other := testkit.RunAfter(t, "prod", map[string]string{"databaseRecoverFrom": "s3://other-archive/prod", "databaseOffsitePrefix": "prod-2", "databaseFailover": "false"}, after)
	assert.Equal(t, []networkingv1.NetworkPolicyEgressRule{toPort(443, anyAddress())}, egressOf(t, other, "database"), "another source is another recovery")
	unset := testkit.RunAfter(t, "prod", map[string]string{"databaseFailover": "false"}, after)
	assert.Empty(t, egressOf(t, unset, "database"))
}

// The output the next update reads back: the recovery's source once the database-migrate Job
// (which writes to the recovered database) is done, "" without a recovery.
func TestRecoveredOutputIsTheSourceAfterTheMigrateJob(t *testing.T) {
	for from, want := range map[string]string{"s3://old-archive/prod": "s3://old-archive/prod", "": ""} {
		testkit.SetStackConfig(t, "prod", map[string]string{"databaseRecoverFrom": from, "databaseOffsitePrefix": "prod-2", "databaseFailover": "false"})
		var got string
		var job pulumi.ID
		require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
			c, err := config.Load(ctx)
			if err != nil {
				return err
			}
			d, err := database.New(ctx, "database", &database.Args{
				Namespace: pulumi.String("ns"), Identity: kube.Identity{Name: "database", Instance: "prod", Component: "database"},
				Security: kube.PodSecurity{RunAsUser: 1000, RunAsGroup: 1000, FSGroup: 1000}, Settings: c.Database,
				Password: c.DBPassword, APIPassword: c.APIDBPassword, JWTSecret: c.JWTSecret, ReplicationPassword: c.ReplicationPassword,
				RolePasswords: c.RolePasswords, OffsiteAccessKeyID: c.OffsiteAccessKeyID, OffsiteSecretAccessKey: c.OffsiteSecretAccessKey, OffsiteEncryptionKey: c.OffsiteEncryptionKey,
				ClientPods: pulumi.StringMap{"app": pulumi.String("backend")},
			})
			if err != nil {
				return err
			}
			pulumi.All(d.RecoveredFrom, d.MigrationJob.ID()).ApplyT(func(v []any) error {
				got, job = v[0].(string), v[1].(pulumi.ID)
				return nil
			})
			return nil
		}, pulumi.WithMocks(testkit.Project, "prod", echoMocks{})))
		assert.Equal(t, want, got, "recovering from %q", from)
		assert.NotEmpty(t, job)
	}
}

// echoMocks accept every resource and give back its inputs.
type echoMocks struct{}

func (echoMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	return args.Name + "-id", args.Inputs, nil
}

func (echoMocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) { return args.Args, nil }
