package database

import (
	"fmt"
	"maps"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// Patroni's REST API port (probes, the members' checks of one another, patronictl) and the
// label it keeps on each member's pod: primary on the leader, replica on the others. The
// database Services select on it, so traffic follows the leader.
const (
	patroniPort      = 8008
	patroniRoleLabel = "role"
	patroniPrimary   = "primary"
	patroniReplica   = "replica"
	patroniConfigDir = "/etc/patroni"
	// patroniScopeLabel holds the cluster's name on each member's pod; Patroni lists its
	// members by it and the pod selector.
	patroniScopeLabel = "ecommerce-platform/patroni-cluster"
	// patroniBinDir is where the members' image keeps PostgreSQL 15 (Percona's layout).
	patroniBinDir = "/usr/pgsql-15/bin"
	// nssWrapper makes the pod's uid, which has no passwd entry in the image, known to initdb
	// and pg_basebackup (libnss_wrapper, shipped in the image) from files in the ConfigMap.
	nssWrapper = "/usr/lib64/libnss_wrapper.so"
)

// membersSet is what the Patroni members need.
type membersSet struct {
	Resource        string
	Namespace       pulumi.StringInput
	NamespaceName   string
	Identity        kube.Identity
	Security        kube.PodSecurity
	Settings        config.Database
	Monitoring      kube.Scrapers
	Spread          bool
	Labels          pulumi.StringMap
	Secret          pulumi.StringInput
	MonitorPassword pulumi.StringInput // the exporters' role: a new one restarts them
	Files           databaseFiles
	Governing       *corev1.Service // the StatefulSet's headless Service (database-service)
}

// newPatroniMembers runs 1 + databaseReplicas members under Patroni as the StatefulSet
// `database`: the first start of the cluster runs initdb on whichever member wins Patroni's
// initialize race, every other member clones the leader and streams from it, so any member
// can be promoted. The disruption budget lets a drain take one member at a time (Patroni
// hands the leader lock on when the leader's pod stops).
func newPatroniMembers(ctx *pulumi.Context, m membersSet, opts ...pulumi.ResourceOption) (*appsv1.StatefulSet, error) {
	s, id, ns := m.Settings, m.Identity, m.Namespace
	serviceAccount, err := newPatroniRBAC(ctx, m.Resource, id, ns, m.Labels, s.Replicas, opts...)
	if err != nil {
		return nil, err
	}
	patroni, hash, err := newPatroniFiles(ctx, m, opts...)
	if err != nil {
		return nil, err
	}
	annotations := m.Monitoring.Annotations(postgresMetricsPort)
	annotations["checksum/config"] = m.Files.ConfHash
	annotations["checksum/patroni"] = hash
	spec := kube.PodOptions{
		ServiceAccount:   serviceAccount,
		Security:         m.Security,
		Containers:       corev1.ContainerArray{patroniContainer(s, m.Secret, m.Security), postgresExporterContainer(s, m.Security)},
		TerminationGrace: 60,
		SpreadSelector:   kube.SpreadIf(m.Spread, id.Selector()),
		Volumes:          append(databaseVolumes(m.Files, m.Secret, superuserPasswordKey), kube.ConfigMapVolume("patroni", patroni)),
	}.Spec()
	// The one pod of the platform that talks to the API server: the leader lock and its own
	// role label, under the Role newPatroniRBAC binds.
	spec.AutomountServiceAccountToken = pulumi.Bool(true)
	statefulSet, err := appsv1.NewStatefulSet(ctx, m.Resource+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: membersMeta(id.Object(), ns, m.Labels),
		Spec: appsv1.StatefulSetSpecArgs{
			ServiceName: m.Governing.Metadata.Name().Elem(),
			Replicas:    pulumi.Int(patroniMembers(s.Replicas)),
			// As the single primary's StatefulSet had it: the field cannot change in place, and
			// a stack turning databaseFailover on keeps its StatefulSet and database-0's data.
			PodManagementPolicy:                  pulumi.String("OrderedReady"),
			Selector:                             &metav1.LabelSelectorArgs{MatchLabels: id.Selector()},
			PersistentVolumeClaimRetentionPolicy: kube.ClaimRetention(s.PVCRetention),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: patroniPodLabels(m.Labels, id), Annotations: exporterPasswordAnnotation(pulumi.ToStringMap(annotations), m.MonitorPassword)},
				Spec:     spec,
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{claimTemplate("data", m.Labels, s.StorageClass, s.StorageSize)},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("database members statefulset: %w", err)
	}
	if err := kube.NewDisruptionBudget(ctx, m.Resource+"-pdb", id.Object(), ns, m.Labels, id.Selector(), kube.MaxOneUnavailable(), opts...); err != nil {
		return nil, fmt.Errorf("database members disruption budget: %w", err)
	}
	return statefulSet, nil
}

// patroniPodLabels are the members' template labels plus Patroni's scope label, by which
// Patroni finds its members' pods (the role label is Patroni's own, set at run time).
func patroniPodLabels(labels pulumi.StringMap, id kube.Identity) pulumi.StringMap {
	out := pulumi.StringMap{patroniScopeLabel: pulumi.String(id.Object(patroniScope))}
	maps.Copy(out, labels)
	return out
}

// leaderSelector and replicaSelector select the members by the role Patroni gives them.
func leaderSelector(id kube.Identity) pulumi.StringMap  { return withRole(id, patroniPrimary) }
func replicaSelector(id kube.Identity) pulumi.StringMap { return withRole(id, patroniReplica) }

func withRole(id kube.Identity, role string) pulumi.StringMap {
	selector := id.Selector()
	selector[patroniRoleLabel] = pulumi.String(role)
	return selector
}

// newPatroniFiles is the members' ConfigMap: patroni.yml, the post-bootstrap script and the
// passwd and group files nss_wrapper reads. It returns the ConfigMap's name and a hash of
// its content (a change rolls the members, one at a time).
func newPatroniFiles(ctx *pulumi.Context, m membersSet, opts ...pulumi.ResourceOption) (pulumi.StringOutput, string, error) {
	s, id, sec := m.Settings, m.Identity, m.Security
	data := map[string]string{
		"patroni-post-bootstrap.sh": assets.PatroniPostBootstrapScript(),
		// initdb refuses a uid it cannot name; the image has no entry for the pod's uid.
		"passwd": fmt.Sprintf("postgres:x:%d:%d:PostgreSQL:%s:/sbin/nologin\n", sec.RunAsUser, sec.RunAsGroup, postgresDataDir),
		"group":  fmt.Sprintf("postgres:x:%d:\n", sec.RunAsGroup),
	}
	yml, err := assets.RenderPatroniYAML(patroniSettings(s, id, m.NamespaceName))
	if err != nil {
		return pulumi.StringOutput{}, "", fmt.Errorf("patroni.yml: %w", err)
	}
	data["patroni.yml"] = yml
	cm, err := corev1.NewConfigMap(ctx, m.Resource+"-patroni", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(id.Object("patroni"), m.Namespace, m.Labels),
		Data:     pulumi.ToStringMap(data),
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, "", fmt.Errorf("patroni config map: %w", err)
	}
	return cm.Metadata.Name().Elem(), kube.Checksum(data["patroni.yml"], data["patroni-post-bootstrap.sh"], data["passwd"], data["group"]), nil
}

// patroniSettings maps the stack's database settings onto patroni.yml.
func patroniSettings(s config.Database, id kube.Identity, namespace string) assets.PatroniSettings {
	archiverSlot := ""
	if s.Archive.Enabled {
		archiverSlot = ArchiverSlot
	}
	return assets.PatroniSettings{
		Scope: id.Object(patroniScope), Namespace: namespace, Labels: id.MatchLabels(),
		ScopeLabel: patroniScopeLabel, RoleLabel: patroniRoleLabel,
		TTL: s.Failover.TTLSeconds, LoopWait: s.Failover.LoopWaitSeconds, RetryTimeout: s.Failover.RetryTimeoutSeconds,
		MaximumLagOnFailover: maximumLagOnFailover, SynchronousNodeCount: s.SyncStandbys, ArchiverSlot: archiverSlot,
		DataDir: postgresDataDir + "/pgdata", BinDir: patroniBinDir, CustomConf: postgresConfigPath, PgPass: "/tmp/pgpass",
		PostBootstrap: patroniConfigDir + "/patroni-post-bootstrap.sh", ListenAddress: "0.0.0.0", RESTAPIPort: patroniPort,
		SuperuserName: s.User, ReplicationUser: replicationUser,
		Postgres: postgresSettings(s, id),
	}
}

// maximumLagOnFailover keeps a replica more than 16 MB (one WAL segment) behind from being
// promoted: with quorum commit a member holding every acknowledged commit is preferred anyway.
const maximumLagOnFailover = 16 << 20

// patroniContainer runs Patroni, which runs PostgreSQL: initdb or a clone of the leader on
// first start, then the leader lock or streaming from whoever holds it. Passwords come from
// the Secret by reference (never in patroni.yml); the pod's own name and address from the
// downward API. Started and alive while Patroni answers (/liveness), ready while PostgreSQL
// runs (/readiness): a replica still cloning its leader is started, not killed.
func patroniContainer(s config.Database, secret pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:    pulumi.String("postgres"),
		Image:   pulumi.String(s.Failover.Image),
		Command: pulumi.ToStringArray([]string{"patroni", patroniConfigDir + "/patroni.yml"}),
		Ports:   corev1.ContainerPortArray{kube.ContainerPort("postgres", PostgresPort), kube.ContainerPort("patroni", patroniPort)},
		Env: corev1.EnvVarArray{
			kube.FieldEnv("PATRONI_NAME", "metadata.name"),
			kube.FieldEnv("POD_IP", "status.podIP"),
			kube.Env("PATRONI_KUBERNETES_POD_IP", "$(POD_IP)"),
			kube.Env("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "$(POD_IP):"+strconv.Itoa(PostgresPort)),
			kube.Env("PATRONI_RESTAPI_CONNECT_ADDRESS", "$(POD_IP):"+strconv.Itoa(patroniPort)),
			kube.SecretEnv("PATRONI_SUPERUSER_PASSWORD", secret, "password"),
			kube.SecretEnv("PATRONI_REPLICATION_PASSWORD", secret, "replication-password"),
			kube.Env("POSTGRES_DB", s.Name),
			// patroni.yml's data_dir, for pg_ctl and friends in a `kubectl exec` session.
			kube.Env("PGDATA", postgresDataDir+"/pgdata"),
			kube.Env("LD_PRELOAD", nssWrapper),
			kube.Env("NSS_WRAPPER_PASSWD", patroniConfigDir+"/passwd"),
			kube.Env("NSS_WRAPPER_GROUP", patroniConfigDir+"/group"),
		},
		VolumeMounts: corev1.VolumeMountArray{
			kube.Mount("data", postgresDataDir),
			kube.ReadOnlyMount("patroni", patroniConfigDir),
			kube.FileMount("config", postgresConfigPath, "postgresql.conf"),
			kube.Mount("tmp", "/tmp"),
			kube.Mount("run", postgresSocketDir),
		},
	}, s.Resources, security.ContainerSecurityContext(), kube.CloningProbes(kube.HTTPCheck("/readiness", patroniPort), kube.HTTPCheck("/liveness", patroniPort)))
}

// kubernetesAPIPorts are the ports the API server listens on: 443 behind the kubernetes
// Service, 6443 on the control plane's own addresses (bypass_api_service, most installers).
var kubernetesAPIPorts = []int{443, 6443}

// patroniIngress lets the members reach one another: streaming replication and pg_rewind on
// 5432, Patroni's REST API on 8008 (a member checks the others before it takes the lock).
func patroniIngress(s config.Database, id kube.Identity) networkingv1.NetworkPolicyIngressRuleArray {
	if !s.Failover.Enabled {
		return nil
	}
	members := kube.FromPods(id.Selector())
	return networkingv1.NetworkPolicyIngressRuleArray{kube.IngressRule(PostgresPort, members), kube.IngressRule(patroniPort, members)}
}

// patroniEgress is the members' way out: to one another on the same ports, and to the API
// server, whose address a NetworkPolicy cannot name portably (it is outside the pod network),
// so its ports are open to any address.
func patroniEgress(s config.Database, id kube.Identity) networkingv1.NetworkPolicyEgressRuleArray {
	if !s.Failover.Enabled {
		return nil
	}
	members := kube.FromPods(id.Selector())
	rules := networkingv1.NetworkPolicyEgressRuleArray{kube.EgressRule(PostgresPort, members), kube.EgressRule(patroniPort, members)}
	for _, port := range kubernetesAPIPorts {
		rules = append(rules, kube.EgressRule(port, kube.Anywhere()))
	}
	return rules
}

// membersMeta is kube.WorkloadMeta with one more kube-score check told: the governing Service,
// database-service, selects only the member Patroni labels primary at run time (the
// serviceName cannot change in place, and Patroni needs no per-pod DNS).
func membersMeta(name string, ns pulumi.StringInput, labels pulumi.StringMap) *metav1.ObjectMetaArgs {
	m := kube.WorkloadMeta(name, ns, labels)
	m.Annotations = pulumi.StringMap{"kube-score/ignore": pulumi.String(kube.KubeScoreIgnoredUIDs + "," + kube.RuntimeServiceName)}
	return m
}
