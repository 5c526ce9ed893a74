package components

import (
	"fmt"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Ports and paths of the database pod.
const (
	PostgresPort        = 5432
	postgresMetricsPort = 9187
	postgresSecretsDir  = "/etc/database-secrets"
	postgresDataDir     = "/var/lib/postgresql/data"
	postgresSocketDir   = "/var/run/postgresql"
	postgresConfigPath  = "/etc/postgresql/postgresql.conf"
)

// DatabaseArgs configure the PostgreSQL tier.
type DatabaseArgs struct {
	Namespace           pulumi.StringInput
	Identity            Identity
	Security            PodSecurity
	Settings            DatabaseConfig
	Password            pulumi.StringInput // owner password, secret
	APIPassword         pulumi.StringInput // `authenticator` role password, secret
	JWTSecret           pulumi.StringInput // the API's JWT signing key, secret (shop.jwt_keys)
	ClientPods          pulumi.StringMap   // pods allowed to connect (the backend)
	MonitoringNamespace string
	ExposeNodePort      bool
	NodePortFrom        []string // CIDRs that may reach the node port
	Spread              bool
}

// Database is PostgreSQL 15 as a StatefulSet with its Services, metrics, backups and policies.
type Database struct {
	pulumi.ResourceState

	// ServiceName is the headless Service clients connect through.
	ServiceName pulumi.StringOutput
	// ReadOnlyServiceName is the ClusterIP Service for read-only clients.
	ReadOnlyServiceName pulumi.StringOutput
	Port                pulumi.IntOutput
	// CredentialsJob has set the authenticator password and the JWT signing key in the
	// database; the backend rolls onto new credentials only after it.
	CredentialsJob *batchv1.Job
}

// NewDatabase creates the database tier. Pass pulumi.Protect to keep its data from
// `pulumi destroy`; every child inherits it.
func NewDatabase(ctx *pulumi.Context, name string, args *DatabaseArgs, opts ...pulumi.ResourceOption) (*Database, error) {
	d := &Database{}
	if err := ctx.RegisterComponentResourceV2("ecommerce:index:Database", name, nil, d, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(d)
	s, ns, id := args.Settings, args.Namespace, args.Identity
	labels := id.Labels(versionOf(s.Image))

	sa, err := newServiceAccount(ctx, name+"-serviceaccount", "database", ns, labels, parent)
	if err != nil {
		return nil, fmt.Errorf("database service account: %w", err)
	}
	secret, err := corev1.NewSecret(ctx, name+"-credentials", &corev1.SecretArgs{
		Metadata: meta("database-credentials", ns, labels),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			"username":               pulumi.String(s.User),
			"password":               args.Password,
			"authenticator-password": args.APIPassword,
			"jwt-secret":             args.JWTSecret,
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database secret: %w", err)
	}
	secretName := secret.Metadata.Name().Elem()

	postgresConf, err := RenderPostgresConf(PostgresSettings{
		Port:                    PostgresPort,
		MaxConnections:          s.MaxConnections,
		SharedBuffers:           s.SharedBuffers,
		WorkMem:                 s.WorkMem,
		EffectiveCacheSize:      s.EffectiveCacheSize,
		LogMinDurationStatement: s.LogMinDurationMs,
		UnixSocketDir:           postgresSocketDir,
	})
	if err != nil {
		return nil, err
	}
	configData := map[string]string{"postgresql.conf": postgresConf, "backup.sh": BackupScript(), "credentials-sync.sh": CredentialsSyncScript()}
	config, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: meta("database-config", ns, labels),
		Data:     pulumi.ToStringMap(configData),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database config map: %w", err)
	}
	scripts, err := InitScripts(s.SeedData)
	if err != nil {
		return nil, err
	}
	initdb, err := corev1.NewConfigMap(ctx, name+"-initdb", &corev1.ConfigMapArgs{
		Metadata: meta("database-initdb", ns, labels),
		Data:     pulumi.ToStringMap(scripts),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database initdb config map: %w", err)
	}

	isReady := execCheck("pg_isready", "--host=127.0.0.1", "--port="+strconv.Itoa(PostgresPort), "--username="+s.User, "--dbname="+s.Name)
	postgresProbes := servingProbes(isReady, tcpCheck(PostgresPort))
	exporterProbes := servingProbes(httpCheck("/", postgresMetricsPort), tcpCheck(postgresMetricsPort))
	postgres := corev1.ContainerArgs{
		Name:  pulumi.String("postgres"),
		Image: pulumi.String(s.Image),
		Args:  pulumi.StringArray{pulumi.String("-c"), pulumi.String("config_file=" + postgresConfigPath)},
		Ports: corev1.ContainerPortArray{containerPort("postgres", PostgresPort)},
		Env: corev1.EnvVarArray{
			env("POSTGRES_USER", s.User),
			env("POSTGRES_DB", s.Name),
			env("POSTGRES_PASSWORD_FILE", postgresSecretsDir+"/password"),
			env("AUTHENTICATOR_PASSWORD_FILE", postgresSecretsDir+"/authenticator-password"),
			env("PGDATA", postgresDataDir+"/pgdata"),
		},
		VolumeMounts: corev1.VolumeMountArray{
			mount("data", postgresDataDir),
			fileMount("config", postgresConfigPath, "postgresql.conf"),
			readOnlyMount("initdb", "/docker-entrypoint-initdb.d"),
			readOnlyMount("secrets", postgresSecretsDir),
			mount("tmp", "/tmp"),
			mount("run", postgresSocketDir),
		},
		Resources:       s.Resources.args(),
		SecurityContext: args.Security.containerSecurityContext(),
		StartupProbe:    postgresProbes.startup,
		ReadinessProbe:  postgresProbes.readiness,
		LivenessProbe:   postgresProbes.liveness,
	}
	exporter := corev1.ContainerArgs{
		Name:  pulumi.String("postgres-exporter"),
		Image: pulumi.String(s.ExporterImage),
		Ports: corev1.ContainerPortArray{containerPort("metrics", postgresMetricsPort)},
		Env: corev1.EnvVarArray{
			env("DATA_SOURCE_URI", fmt.Sprintf("127.0.0.1:%d/%s?sslmode=disable", PostgresPort, s.Name)),
			env("DATA_SOURCE_USER", s.User),
			env("DATA_SOURCE_PASS_FILE", postgresSecretsDir+"/password"),
		},
		VolumeMounts:    corev1.VolumeMountArray{readOnlyMount("secrets", postgresSecretsDir)},
		Resources:       sidecarResources.args(),
		SecurityContext: args.Security.containerSecurityContext(),
		StartupProbe:    exporterProbes.startup,
		ReadinessProbe:  exporterProbes.readiness,
		LivenessProbe:   exporterProbes.liveness,
	}
	annotations := prometheusAnnotations(strconv.Itoa(postgresMetricsPort))
	annotations["checksum/config"] = checksum(postgresConf)
	retention := pulumi.String(s.PVCRetention)

	headless, err := newService(ctx, ns, labels, service{
		Resource: name + "-service", Name: "database-service", Type: "Headless", Selector: id.Selector(),
		Port: PostgresPort, TargetPort: PostgresPort, PortName: "postgres",
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database headless service: %w", err)
	}
	readonly, err := newService(ctx, ns, labels, service{
		Resource: name + "-readonly", Name: "database-readonly", Type: "ClusterIP", Selector: id.Selector(),
		Port: PostgresPort, TargetPort: PostgresPort, PortName: "postgres",
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database readonly service: %w", err)
	}
	if args.ExposeNodePort {
		if _, err := newService(ctx, ns, labels, service{
			Resource: name + "-nodeport", Name: "database-nodeport", Type: "NodePort", Selector: id.Selector(),
			Port: PostgresPort, TargetPort: PostgresPort, NodePort: s.NodePort, PortName: "postgres",
		}, parent); err != nil {
			return nil, fmt.Errorf("database node port service: %w", err)
		}
	}

	statefulSet, err := appsv1.NewStatefulSet(ctx, name+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: workloadMeta("database", ns, labels),
		Spec: appsv1.StatefulSetSpecArgs{
			ServiceName:         headless.Metadata.Name().Elem(),
			Replicas:            pulumi.Int(1),
			PodManagementPolicy: pulumi.String("OrderedReady"),
			Selector:            &metav1.LabelSelectorArgs{MatchLabels: id.Selector()},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs{
				WhenDeleted: retention,
				WhenScaled:  retention,
			},
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels, Annotations: pulumi.ToStringMap(annotations)},
				Spec: podOptions{
					ServiceAccount:   sa.Metadata.Name().Elem(),
					Security:         args.Security,
					Containers:       corev1.ContainerArray{postgres, exporter},
					TerminationGrace: 60,
					SpreadSelector:   spreadIf(args.Spread, id.Selector()),
					Volumes: corev1.VolumeArray{
						configMapVolume("config", config.Metadata.Name().Elem()),
						configMapVolume("initdb", initdb.Metadata.Name().Elem()),
						secretVolume("secrets", secretName),
						emptyDir("tmp", "64Mi"),
						emptyDir("run", "16Mi"),
					},
				}.spec(),
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{corev1.PersistentVolumeClaimTypeArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("data"), Labels: labels},
				Spec: corev1.PersistentVolumeClaimSpecArgs{
					AccessModes:      pulumi.StringArray{pulumi.String("ReadWriteOnce")},
					StorageClassName: pulumi.String(s.StorageClass),
					Resources: &corev1.VolumeResourceRequirementsArgs{
						Requests: pulumi.StringMap{"storage": pulumi.String(s.StorageSize)},
					},
				},
			}},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database statefulset: %w", err)
	}

	if err := newDisruptionBudget(ctx, name+"-pdb", "database", ns, labels, id.Selector(),
		policyv1.PodDisruptionBudgetSpecArgs{MinAvailable: pulumi.Int(1)}, parent); err != nil {
		return nil, fmt.Errorf("database disruption budget: %w", err)
	}

	backupPods := id.WithComponent("backup")
	credentialsPods := id.WithComponent("credentials")
	clients := []networkingv1.NetworkPolicyPeerArgs{
		fromPods(args.ClientPods), fromPods(backupPods.Selector()), fromPods(credentialsPods.Selector()),
	}
	if args.ExposeNodePort {
		clients = append(clients, fromCIDRs(args.NodePortFrom)...)
	}
	if err := newAllowPolicy(ctx, ns, allowPolicy{
		Resource: name + "-netpol", Name: "database", Labels: labels, Pods: id.Selector(),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{
			ingressRule(PostgresPort, clients...),
			ingressRule(postgresMetricsPort, fromNamespace(args.MonitoringNamespace)),
		},
	}, parent); err != nil {
		return nil, fmt.Errorf("database network policy: %w", err)
	}

	if err := newBackup(ctx, name, args, backupPods, sa.Metadata.Name().Elem(), secretName, config.Metadata.Name().Elem(), headless.Metadata.Name().Elem(), parent); err != nil {
		return nil, err
	}

	d.CredentialsJob, err = newCredentialsJob(ctx, credentialsJob{
		Resource: name + "-credentials-job", Namespace: ns, Identity: credentialsPods, Security: args.Security,
		Image: s.Image, User: s.User, Database: s.Name, Host: headless.Metadata.Name().Elem(),
		ServiceAccount: sa.Metadata.Name().Elem(), Secret: secretName, Config: config.Metadata.Name().Elem(),
		Credentials: credentialsHash(args.APIPassword, args.JWTSecret), DatabasePods: id.Selector(),
	}, parent, pulumi.DependsOn([]pulumi.Resource{statefulSet}))
	if err != nil {
		return nil, err
	}

	d.ServiceName = headless.Metadata.Name().Elem()
	d.ReadOnlyServiceName = readonly.Metadata.Name().Elem()
	d.Port = pulumi.Int(PostgresPort).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{
		"serviceName":         d.ServiceName,
		"readOnlyServiceName": d.ReadOnlyServiceName,
		"port":                d.Port,
	}); err != nil {
		return nil, err
	}
	return d, nil
}
