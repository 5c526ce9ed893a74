package attack

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ecommerce-platform/tests/testkit"
)

// credentialsSecret is the Secret whose keys are the database's passwords and the signing key.
const credentialsSecret = "database-credentials"

// superuserKey is the key of credentialsSecret holding the superuser's password (dbPassword).
const superuserKey = "password"

// stacksOfRound3 are the stacks the round-3 credential findings are checked in: dev, prod
// (replicas, archiver, off-site copies), prod recovering from an archive (the primary's
// recovery containers; a recovery bootstraps a single primary, so databaseFailover is off
// where the key exists), and dev without the archiver.
var stacksOfRound3 = map[string]struct {
	stack     string
	overrides map[string]string
}{
	"dev":        {"dev", nil},
	"prod":       {"prod", nil},
	"prod-pitr":  {"prod", map[string]string{"databaseRecoverFrom": "s3://old-archive/prod", "databaseFailover": "false"}},
	"dev-no-arc": {"dev", map[string]string{"databaseArchive": "false", "replicationPassword": testkit.Unset}},
}

// secretKeysOf is what one container can read of credentialsSecret (held: the keys its
// mounts and secretKeyRefs give it) and what it does read (read: the keys whose files its
// environment names, and its secretKeyRefs).
func secretKeysOf(c corev1.Container, pod corev1.PodSpec, all []string) (held, read map[string]bool) {
	held, read = map[string]bool{}, map[string]bool{}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	var dirs []string // where the Secret's files are, in this container
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok || v.Secret == nil || v.Secret.SecretName != credentialsSecret {
			continue
		}
		keys := all // a Secret volume without items is every key
		if len(v.Secret.Items) > 0 {
			keys = nil
			for _, it := range v.Secret.Items {
				keys = append(keys, it.Key)
			}
		}
		for _, it := range v.Secret.Items {
			if m.SubPath != "" && m.SubPath == it.Path {
				keys = []string{it.Key}
			}
		}
		for _, k := range keys {
			held[k] = true
		}
		dirs = append(dirs, strings.TrimSuffix(m.MountPath, "/")+"/")
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == credentialsSecret {
			held[e.ValueFrom.SecretKeyRef.Key] = true
			read[e.ValueFrom.SecretKeyRef.Key] = true
		}
		for _, dir := range dirs {
			if strings.HasPrefix(e.Value, dir) {
				read[strings.TrimPrefix(e.Value, dir)] = true
			}
		}
	}
	for _, from := range c.EnvFrom {
		if from.SecretRef != nil && from.SecretRef.Name == credentialsSecret {
			for _, k := range all {
				held[k] = true
			}
		}
	}
	return held, read
}

// 4. Every container that mounted database-credentials got every key: the archiver, which
// reads only the replication password, held the superuser's, the API's and the signing key;
// so did both CronJobs and the exporters. As deployed now: each container holds exactly the
// keys it reads (its mounts' items and secretKeyRefs equal the files its environment names),
// and the superuser's password is held only by the server itself (its first start), the
// database-migrate Job's bootstrap and the database-credentials Job.
func TestAttackRound3EachContainerHoldsOnlyTheKeysItReads(t *testing.T) {
	permitted := []string{"database/postgres", "database-credentials/credentials-sync", "database-migrate/bootstrap"}
	for name, tc := range stacksOfRound3 {
		t.Run(name, func(t *testing.T) {
			r := testkit.MustRun(t, tc.stack, tc.overrides)
			all := slices.Sorted(maps.Keys(testkit.TypedSecret(t, r, credentialsSecret).StringData))
			var superuser []string
			for _, w := range r.Workloads() {
				pod := testkit.TypedPod(t, w).Spec
				for _, c := range testkit.TypedContainers(pod) {
					where := w.K8sName() + "/" + c.Name
					held, read := secretKeysOf(c, pod, all)
					assert.Equal(t, read, held, "%s: the keys of %s it holds are not the keys it reads", where, credentialsSecret)
					if held[superuserKey] {
						superuser = append(superuser, where)
					}
				}
			}
			slices.Sort(superuser)
			assert.Subset(t, permitted, superuser, "containers holding the superuser's password")
			assert.Contains(t, superuser, "database-migrate/bootstrap")
		})
	}
}

// 4. The archiver could reach any address on 443. As deployed now: its egress (and a
// recovering primary's) is the object storage endpoint itself where config names it by
// address (that address alone) or as a Service of the cluster (its namespace alone); only an
// endpoint named by an outside host name, which a NetworkPolicy cannot name, leaves the port
// open to every address (docs/security-round-3.md says so).
func TestAttackRound3ObjectStorageEgressIsTheEndpoint(t *testing.T) {
	ipBlock := func(cidr string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}
	}
	namespace := func(ns string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}
	}
	for _, tc := range []struct {
		endpoint string
		port     int
		peer     networkingv1.NetworkPolicyPeer
	}{
		{"https://10.20.30.40:9000", 9000, ipBlock("10.20.30.40/32")},
		{"https://10.20.30.40", 443, ipBlock("10.20.30.40/32")},
		{"https://[2001:db8::7]:8443", 8443, ipBlock("2001:db8::7/128")},
		{"https://minio.storage.svc.cluster.local:9000", 9000, namespace("storage")},
		{"https://minio.storage.svc:9000", 9000, namespace("storage")},
		{"https://s3.eu-central-1.amazonaws.com", 443, ipBlock("0.0.0.0/0")},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			// A recovery bootstraps a single primary (databaseFailover off, where the key exists).
			r := testkit.MustRun(t, "prod", map[string]string{"databaseOffsiteEndpoint": tc.endpoint, "databaseRecoverFrom": "s3://old-archive/prod", "databaseFailover": "false"})
			archiver := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "database-archiver").Inputs)
			require.Len(t, archiver.Spec.Egress, 2, "the primary and the object storage endpoint")
			assert.Equal(t, []string{peerText(tc.peer)}, peerTexts(archiver.Spec.Egress[1].To), "the archiver's egress to %s", tc.endpoint)
			require.Len(t, archiver.Spec.Egress[1].Ports, 1)
			assert.Equal(t, tc.port, archiver.Spec.Egress[1].Ports[0].Port.IntValue())

			primary := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "database").Inputs)
			require.Len(t, primary.Spec.Egress, 1, "a recovering primary reaches the endpoint only")
			assert.Equal(t, []string{peerText(tc.peer)}, peerTexts(primary.Spec.Egress[0].To), "the recovering primary's egress to %s", tc.endpoint)
			require.Len(t, primary.Spec.Egress[0].Ports, 1)
			assert.Equal(t, tc.port, primary.Spec.Egress[0].Ports[0].Port.IntValue())
		})
	}
}

// peerText is a NetworkPolicy peer as text (its address block, or its selectors), so a wrong
// peer shows in the failure.
func peerText(p networkingv1.NetworkPolicyPeer) string {
	var parts []string
	if p.IPBlock != nil {
		parts = append(parts, "ipBlock "+p.IPBlock.CIDR+" except "+strings.Join(p.IPBlock.Except, ","))
	}
	if p.NamespaceSelector != nil {
		parts = append(parts, "namespaces "+metav1.FormatLabelSelector(p.NamespaceSelector))
	}
	if p.PodSelector != nil {
		parts = append(parts, "pods "+metav1.FormatLabelSelector(p.PodSelector))
	}
	return strings.Join(parts, "; ")
}

func peerTexts(peers []networkingv1.NetworkPolicyPeer) []string {
	out := []string{}
	for _, p := range peers {
		out = append(out, peerText(p))
	}
	return out
}
