package database

import (
	"fmt"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// replicaSet is what the read replicas need.
type replicaSet struct {
	Resource            string
	Namespace           pulumi.StringInput
	Identity            kube.Identity // of the replica pods
	Security            kube.PodSecurity
	Settings            config.Database
	ServiceAccount      pulumi.StringInput
	Secret              pulumi.StringInput
	Files               databaseFiles
	PrimaryHost         pulumi.StringInput
	PrimaryPods         pulumi.StringMap // the only pods a replica connects to
	ReplicationPassword pulumi.StringInput
	MonitorPassword     pulumi.StringInput // the exporters' role (monitorDbPassword)
	ClientPods          pulumi.StringMap   // pods allowed to connect (the backend)
	Monitoring          kube.Scrapers
	Spread              bool
}

// newReplicas runs Settings.Replicas streaming replicas of the primary as a StatefulSet of
// their own (claims of the database's class, size and retention), behind a headless Service
// of their own, with a disruption budget and a NetworkPolicy: the backend and the monitoring
// namespace in, the primary out.
func newReplicas(ctx *pulumi.Context, r replicaSet, opts ...pulumi.ResourceOption) error {
	s, ns := r.Settings, r.Namespace
	labels := r.Identity.Labels(kube.VersionOf(s.Image))
	headless, err := kube.NewService(ctx, ns, labels, kube.Service{
		Resource: r.Resource + "-service", Name: r.Identity.Object("replica"), Type: "Headless", Selector: r.Identity.Selector(),
		Port: PostgresPort, TargetPort: PostgresPort, PortName: "postgres",
	}, opts...)
	if err != nil {
		return fmt.Errorf("replica headless service: %w", err)
	}
	annotations := r.Monitoring.Annotations(postgresMetricsPort)
	annotations["checksum/config"] = r.Files.ConfHash
	templateAnnotations := pulumi.ToStringMap(annotations)
	// A new replicationPassword rolls the replicas (after the credentials job set it): their
	// WAL receivers log in with it.
	templateAnnotations["checksum/credentials"] = CredentialsHash(r.ReplicationPassword)
	templateAnnotations = exporterPasswordAnnotation(templateAnnotations, r.MonitorPassword)
	if _, err := appsv1.NewStatefulSet(ctx, r.Resource+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: kube.WorkloadMeta(r.Identity.Object("replica"), ns, labels),
		Spec: appsv1.StatefulSetSpecArgs{
			ServiceName:                          headless.Metadata.Name().Elem(),
			Replicas:                             pulumi.Int(s.Replicas),
			PodManagementPolicy:                  pulumi.String("Parallel"),
			Selector:                             &metav1.LabelSelectorArgs{MatchLabels: r.Identity.Selector()},
			PersistentVolumeClaimRetentionPolicy: kube.ClaimRetention(s.PVCRetention),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels, Annotations: templateAnnotations},
				Spec: kube.PodOptions{
					ServiceAccount: r.ServiceAccount,
					Security:       r.Security,
					InitContainers: corev1.ContainerArray{replicaBootstrapContainer(s, r.PrimaryHost, r.Security)},
					Containers: corev1.ContainerArray{
						replicaPostgresContainer(s, r.Secret, r.Security),
						postgresExporterContainer(s, r.Security),
					},
					TerminationGrace: 60,
					SpreadSelector:   kube.SpreadIf(r.Spread, r.Identity.Selector()),
					Volumes:          databaseVolumes(r.Files, r.Secret, replicationPasswordKey),
				}.Spec(),
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{claimTemplate("data", labels, s.StorageClass, s.StorageSize)},
		},
	}, opts...); err != nil {
		return fmt.Errorf("replica statefulset: %w", err)
	}
	if err := kube.NewDisruptionBudget(ctx, r.Resource+"-pdb", r.Identity.Object("replica"), ns, labels, r.Identity.Selector(), kube.MaxOneUnavailable(), opts...); err != nil {
		return fmt.Errorf("replica disruption budget: %w", err)
	}
	if err := kube.NewAllowPolicy(ctx, ns, kube.AllowPolicy{
		Resource: r.Resource + "-netpol", Name: r.Identity.Object("replica"), Labels: labels, Pods: r.Identity.Selector(),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{
			kube.IngressRule(PostgresPort, kube.FromPods(r.ClientPods)),
			kube.IngressRule(postgresMetricsPort, kube.FromNamespace(r.Monitoring.Namespace)),
		},
		Egress: networkingv1.NetworkPolicyEgressRuleArray{kube.EgressRule(PostgresPort, kube.FromPods(r.PrimaryPods))},
	}, opts...); err != nil {
		return fmt.Errorf("replica network policy: %w", err)
	}
	return nil
}

// replicaBootstrapContainer copies the primary into an empty data directory (a no-op on an
// existing one): replica-bootstrap.sh.
func replicaBootstrapContainer(s config.Database, primary pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("replica-bootstrap"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/replica-bootstrap.sh"}),
		Env: corev1.EnvVarArray{
			kube.Env("PGDATA", postgresDataDir+"/pgdata"),
			corev1.EnvVarArgs{Name: pulumi.String("PRIMARY_HOST"), Value: primary},
			kube.Env("PRIMARY_PORT", strconv.Itoa(PostgresPort)),
			kube.Env("REPLICATION_USER", replicationUser),
			kube.Env("PGPASSWORD_FILE", postgresSecretsDir+"/"+replicationPasswordKey),
			kube.FieldEnv("SLOT", "metadata.name"),
			kube.Env("TIMEOUT_SECONDS", "600"),
		},
		VolumeMounts: corev1.VolumeMountArray{
			kube.Mount("data", postgresDataDir),
			kube.FileMount("config", "/scripts/replica-bootstrap.sh", "replica-bootstrap.sh"),
			kube.ReadOnlyMount("secrets", postgresSecretsDir),
			kube.Mount("tmp", "/tmp"),
		},
		Resources:       kube.Requirements(kube.BackupResources),
		SecurityContext: security.ContainerSecurityContext(),
	}
}

// replicaPostgresContainer is a hot standby: the database server with the replication
// password in its environment (for the WAL receiver), and not the superuser's (a replica never
// runs initdb: replica-bootstrap copied the primary). Started and alive while it accepts
// connections, however far behind (a lagging replica is never restarted for it); ready only
// while it is in recovery and no further behind than ReplicaMaxLagSeconds (caught up, or its
// last replayed transaction recent enough).
func replicaPostgresContainer(s config.Database, secret pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	c := postgresServer(s, security)
	c.Env = append(c.Env.(corev1.EnvVarArray), kube.SecretEnv("PGPASSWORD", secret, replicationPasswordKey))
	ready := kube.ExecCheck("psql", "--host="+postgresSocketDir, "--port="+strconv.Itoa(PostgresPort), "--username="+s.User,
		"--dbname=postgres", "--no-psqlrc", "--tuples-only", "--command",
		// Not ready: a division by zero (at run time: the divisor is not a constant), which
		// makes psql exit 1.
		fmt.Sprintf("SELECT 1 / coalesce(pg_is_in_recovery() AND (pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "+
			"OR now() - pg_last_xact_replay_timestamp() < interval '%d seconds'), false)::int", s.ReplicaMaxLagSeconds))
	c.ReadinessProbe = kube.Probe(ready, kube.ReadinessTiming) // startup (accepts connections) and liveness stay
	return c
}
