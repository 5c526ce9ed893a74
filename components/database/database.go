package database

import (
	"fmt"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// Args configure the PostgreSQL tier.
type Args struct {
	Namespace           pulumi.StringInput
	NamespaceName       string // the same, as text: patroni.yml names it
	Identity            kube.Identity
	Security            kube.PodSecurity
	Settings            config.Database
	Password            pulumi.StringInput   // owner password, secret
	APIPassword         pulumi.StringInput   // `authenticator` role password, secret
	JWTSecret           pulumi.StringInput   // the API's JWT signing key, secret (shop.jwt_keys)
	ReplicationPassword pulumi.StringInput   // the replicator role's password, secret ("" without replicas or archiver)
	RolePasswords       config.RolePasswords // the jobs' and exporters' own login roles, secret
	// Object storage keys of the off-site copies and recoveries, and the key the archive is
	// encrypted with there, secret ("" when unused).
	OffsiteAccessKeyID, OffsiteSecretAccessKey, OffsiteEncryptionKey pulumi.StringInput
	ClientPods                                                       pulumi.StringMap // pods allowed to connect (the backend)
	Monitoring                                                       kube.Scrapers
	ExposeNodePorts                                                  bool
	NodePortFrom                                                     []string // CIDRs that may reach the node port
	Spread                                                           bool
	// RecoveryDone: an earlier update of this stack recorded the recovery from
	// Settings.Recovery.From as finished (RecoveredOutput), so the primary gets no egress.
	RecoveryDone bool
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
	// MigrationJob has brought the schema to the program's migrations (SchemaVersion); the
	// credentials Job, the CronJobs and, through them, the backend run after it.
	MigrationJob  *batchv1.Job
	SchemaVersion int
	// SchemaHash identifies the migration set of the last run (the backend rolls on it).
	SchemaHash string
	// ReplicaPods selects the read replicas (nil without replicas).
	ReplicaPods pulumi.StringMap
	// RecoveredFrom is databaseRecoverFrom once the database-migrate Job, which writes to the
	// database (so it was promoted), completed after the primary ("" without a recovery): the
	// RecoveredOutput the next update reads back.
	RecoveredFrom pulumi.StringOutput
}

// New creates the database tier. Pass pulumi.Protect to keep its data from
// `pulumi destroy`; every child inherits it.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Database, error) {
	d := &Database{}
	if err := ctx.RegisterComponentResourceV2("ecommerce:index:Database", name, nil, d, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(d)
	s, ns, id := args.Settings, args.Namespace, args.Identity
	labels := id.Labels(kube.VersionOf(s.Image))

	sa, err := kube.NewServiceAccount(ctx, name+"-serviceaccount", id.Object(), ns, labels, parent)
	if err != nil {
		return nil, fmt.Errorf("database service account: %w", err)
	}
	serviceAccount := sa.Metadata.Name().Elem()
	secret, err := newDatabaseSecret(ctx, name, ns, labels, args, parent)
	if err != nil {
		return nil, err
	}
	files, err := newDatabaseFiles(ctx, name, id, ns, labels, s, parent)
	if err != nil {
		return nil, err
	}
	primaryPods, readonlyPods := databaseServiceSelectors(s, id)
	headless, readonly, err := newDatabaseServices(ctx, name, args, labels, primaryPods, readonlyPods, parent)
	if err != nil {
		return nil, err
	}
	var offsite pulumi.StringInput = pulumi.String("")
	if s.UsesObjectStorage() {
		if offsite, err = newOffsiteSecret(ctx, name, id, ns, labels, args.OffsiteAccessKeyID, args.OffsiteSecretAccessKey, args.OffsiteEncryptionKey, parent); err != nil {
			return nil, err
		}
	}
	var statefulSet *appsv1.StatefulSet
	if s.Failover.Enabled {
		statefulSet, err = newPatroniMembers(ctx, membersSet{
			Resource: name, Namespace: ns, NamespaceName: args.NamespaceName, Identity: id, Security: args.Security, Settings: s,
			Monitoring: args.Monitoring, Spread: args.Spread, Labels: labels, Secret: secret, Files: files, Governing: headless,
			MonitorPassword: args.RolePasswords.Monitor,
		}, parent)
	} else {
		statefulSet, err = newDatabaseStatefulSet(ctx, name, args, labels, serviceAccount, secret, offsite, files, headless, parent)
	}
	if err != nil {
		return nil, err
	}
	host := headless.Metadata.Name().Elem()
	if err := d.newDependents(ctx, name, args, dependents{
		ServiceAccount: serviceAccount, Secret: secret, Offsite: offsite, Files: files, Host: host, StatefulSet: statefulSet,
	}, parent); err != nil {
		return nil, err
	}

	d.RecoveredFrom = pulumi.String("").ToStringOutput()
	if from := s.Recovery.From; from != "" {
		d.RecoveredFrom = d.MigrationJob.ID().ApplyT(func(pulumi.ID) string { return from }).(pulumi.StringOutput)
	}
	d.ServiceName = host
	d.ReadOnlyServiceName = readonly.Metadata.Name().Elem()
	d.Port = pulumi.Int(PostgresPort).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{
		"serviceName":         d.ServiceName,
		"readOnlyServiceName": d.ReadOnlyServiceName,
		"port":                d.Port,
		"schemaVersion":       pulumi.Int(d.SchemaVersion),
	}); err != nil {
		return nil, err
	}
	return d, nil
}

// dependents are what the database's jobs, replicas and archiver share with it.
type dependents struct {
	ServiceAccount, Secret, Offsite, Host pulumi.StringInput
	Files                                 databaseFiles
	StatefulSet                           pulumi.Resource
}

// newDependents creates what runs beside the primary: its policies, the logical backup, the
// credentials Job, then (after it: the replicator role exists) the replicas and the archiver.
func (d *Database) newDependents(ctx *pulumi.Context, name string, args *Args, dep dependents, parent pulumi.ResourceOption) error {
	s, ns, id := args.Settings, args.Namespace, args.Identity
	backupPods, credentialsPods := id.WithComponent("backup"), id.WithComponent("credentials")
	replicaPods, archiverPods := id.WithComponent("replica"), id.WithComponent("archiver")
	releasePods := id.WithComponent("release-unpaid")
	labels := id.Labels(kube.VersionOf(s.Image))
	migratePods := id.WithComponent("migrate")
	if err := newDatabasePolicies(ctx, name, args, labels, []kube.Identity{backupPods, credentialsPods, replicaPods, archiverPods, releasePods, migratePods}, parent); err != nil {
		return err
	}
	release, err := newSchemaRelease(s.SeedData)
	if err != nil {
		return err
	}
	d.SchemaVersion, d.SchemaHash = release.Version, release.Hash
	if d.MigrationJob, err = newMigrationJob(ctx, migrationJob{
		Resource: name + "-migrate", Namespace: ns, Identity: migratePods, Security: args.Security, Settings: s,
		ServiceAccount: dep.ServiceAccount, Secret: dep.Secret, Host: dep.Host, DatabasePods: id.Selector(),
	}, release, parent, pulumi.DependsOn([]pulumi.Resource{dep.StatefulSet})); err != nil {
		return err
	}
	afterMigrations := pulumi.DependsOn([]pulumi.Resource{d.MigrationJob})
	roles := args.RolePasswords
	d.CredentialsJob, err = newCredentialsJob(ctx, credentialsJob{
		Resource: name + "-credentials-job", Namespace: ns, Identity: credentialsPods, Security: args.Security,
		Image: s.Image, User: s.User, DatabaseName: s.Name, Host: dep.Host, OrderMaxOpenUnits: s.OrderMaxOpenUnits,
		ServiceAccount: dep.ServiceAccount, Secret: dep.Secret, Config: dep.Files.Config, OrderMaxProductSharePercent: s.OrderMaxProductSharePercent,
		Credentials: CredentialsHash(args.APIPassword, args.JWTSecret, args.ReplicationPassword, args.Password,
			roles.Backup, roles.ReleaseUnpaid, roles.Monitor), DatabasePods: id.Selector(),
	}, parent, afterMigrations)
	if err != nil {
		return err
	}
	// The CronJobs log in as roles whose passwords the credentials Job sets.
	afterCredentials := pulumi.DependsOn([]pulumi.Resource{d.CredentialsJob})
	cron := databaseCronJob{
		Resource: name, Namespace: ns, Identity: backupPods, Security: args.Security, Settings: s,
		ServiceAccount: dep.ServiceAccount, Secret: dep.Secret, Config: dep.Files.Config, Host: dep.Host, DatabasePods: id.Selector(),
	}
	if err := newBackup(ctx, cron, parent, afterCredentials); err != nil {
		return err
	}
	cron.Identity = releasePods
	if err := newReleaseUnpaid(ctx, cron, parent, afterCredentials); err != nil {
		return err
	}
	if s.Failover.Enabled {
		d.ReplicaPods = replicaSelector(id)
	} else if s.Replicas > 0 {
		if err := newReplicas(ctx, replicaSet{
			Resource: name + "-replica", Namespace: ns, Identity: replicaPods, Security: args.Security, Settings: s,
			ServiceAccount: dep.ServiceAccount, Secret: dep.Secret, Files: dep.Files, PrimaryHost: dep.Host, PrimaryPods: id.Selector(),
			ReplicationPassword: args.ReplicationPassword, MonitorPassword: args.RolePasswords.Monitor, ClientPods: args.ClientPods,
			Monitoring: args.Monitoring, Spread: args.Spread,
		}, parent, afterCredentials); err != nil {
			return err
		}
		d.ReplicaPods = replicaPods.Selector()
	}
	if s.Archive.Enabled {
		return newArchiver(ctx, archiverSet{
			Resource: name + "-archiver", Namespace: ns, Identity: archiverPods, Security: args.Security, Settings: s,
			ServiceAccount: dep.ServiceAccount, Secret: dep.Secret, Offsite: dep.Offsite, Config: dep.Files.Config,
			PrimaryHost: dep.Host, PrimaryPods: id.Selector(), Spread: args.Spread, Monitoring: args.Monitoring,
		}, parent, afterCredentials)
	}
	return nil
}

// newDatabaseSecret holds the owner's and the API role's passwords and the JWT signing key,
// as files for the database pod and its jobs. It returns the Secret's name.
func newDatabaseSecret(ctx *pulumi.Context, name string, ns pulumi.StringInput, labels pulumi.StringMap, args *Args, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	secret, err := corev1.NewSecret(ctx, name+"-credentials", &corev1.SecretArgs{
		Metadata: kube.Meta(args.Identity.Object("credentials"), ns, labels),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			"username":               pulumi.String(args.Settings.User),
			superuserPasswordKey:     args.Password,
			authenticatorPasswordKey: args.APIPassword,
			jwtSecretKey:             args.JWTSecret,
			replicationPasswordKey:   args.ReplicationPassword,
			backupPasswordKey:        args.RolePasswords.Backup,
			releaseUnpaidPasswordKey: args.RolePasswords.ReleaseUnpaid,
			monitorPasswordKey:       args.RolePasswords.Monitor,
		},
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("database secret: %w", err)
	}
	return secret.Metadata.Name().Elem(), nil
}

// databaseServiceSelectors are the pods database-service (and the node port) and
// database-readonly reach: under Patroni the member it labels primary and those it labels
// replica, so both follow a failover; otherwise the primary's pod and the replicas' (the
// primary when there are none).
func databaseServiceSelectors(s config.Database, id kube.Identity) (primary, readonly pulumi.StringMap) {
	switch {
	case s.Failover.Enabled:
		return leaderSelector(id), replicaSelector(id)
	case s.Replicas > 0:
		return id.Selector(), id.WithComponent("replica").Selector()
	default:
		return id.Selector(), id.Selector()
	}
}

// newDatabaseServices are the seed's Services: database-service (headless, the StatefulSet's),
// database-readonly and, when exposed, database-nodeport.
func newDatabaseServices(ctx *pulumi.Context, name string, args *Args, labels, primaryPods, readonlyPods pulumi.StringMap, parent pulumi.ResourceOption) (*corev1.Service, *corev1.Service, error) {
	s, ns, id := args.Settings, args.Namespace, args.Identity
	headless, err := kube.NewService(ctx, ns, labels, kube.Service{
		Resource: name + "-service", Name: id.Object("service"), Type: "Headless", Selector: primaryPods, SelectsRuntimeLabels: s.Failover.Enabled,
		Port: PostgresPort, TargetPort: PostgresPort, PortName: "postgres",
	}, parent)
	if err != nil {
		return nil, nil, fmt.Errorf("database headless service: %w", err)
	}
	readonly, err := kube.NewService(ctx, ns, labels, kube.Service{
		Resource: name + "-readonly", Name: id.Object("readonly"), Type: "ClusterIP", Selector: readonlyPods, SelectsRuntimeLabels: s.Failover.Enabled,
		Port: PostgresPort, TargetPort: PostgresPort, PortName: "postgres",
	}, parent)
	if err != nil {
		return nil, nil, fmt.Errorf("database readonly service: %w", err)
	}
	if args.ExposeNodePorts {
		if _, err := kube.NewService(ctx, ns, labels, kube.Service{
			Resource: name + "-nodeport", Name: id.Object("nodeport"), Type: "NodePort", Selector: primaryPods, SelectsRuntimeLabels: s.Failover.Enabled,
			Port: PostgresPort, TargetPort: PostgresPort, NodePort: s.NodePort, PortName: "postgres",
		}, parent); err != nil {
			return nil, nil, fmt.Errorf("database node port service: %w", err)
		}
	}
	return headless, readonly, nil
}

// newDatabaseStatefulSet runs PostgreSQL with its exporter, one claim per pod, and the
// disruption budget that keeps it up through voluntary evictions.
func newDatabaseStatefulSet(ctx *pulumi.Context, name string, args *Args, labels pulumi.StringMap, serviceAccount, secret, offsite pulumi.StringInput, files databaseFiles, headless *corev1.Service, parent pulumi.ResourceOption) (*appsv1.StatefulSet, error) {
	s, ns, id := args.Settings, args.Namespace, args.Identity
	annotations := args.Monitoring.Annotations(postgresMetricsPort)
	annotations["checksum/config"] = files.ConfHash
	statefulSet, err := appsv1.NewStatefulSet(ctx, name+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: kube.WorkloadMeta(id.Object(), ns, labels),
		Spec: appsv1.StatefulSetSpecArgs{
			ServiceName:                          headless.Metadata.Name().Elem(),
			Replicas:                             pulumi.Int(1),
			PodManagementPolicy:                  pulumi.String("OrderedReady"),
			Selector:                             &metav1.LabelSelectorArgs{MatchLabels: id.Selector()},
			PersistentVolumeClaimRetentionPolicy: kube.ClaimRetention(s.PVCRetention),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels, Annotations: exporterPasswordAnnotation(pulumi.ToStringMap(annotations), args.RolePasswords.Monitor)},
				Spec: kube.PodOptions{
					ServiceAccount:   serviceAccount,
					Security:         args.Security,
					InitContainers:   recoveryContainers(s, offsite, args.Security),
					Containers:       corev1.ContainerArray{postgresContainer(s, args.Security), postgresExporterContainer(s, args.Security)},
					TerminationGrace: 60,
					SpreadSelector:   kube.SpreadIf(args.Spread, id.Selector()),
					Volumes:          append(databaseVolumes(files, secret, superuserPasswordKey), recoveryVolumes(s, offsite)...),
				}.Spec(),
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{claimTemplate("data", labels, s.StorageClass, s.StorageSize)},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("database statefulset: %w", err)
	}
	if err := kube.NewDisruptionBudget(ctx, name+"-pdb", id.Object(), ns, labels, id.Selector(),
		policyv1.PodDisruptionBudgetSpecArgs{MinAvailable: pulumi.Int(1)}, parent); err != nil {
		return nil, fmt.Errorf("database disruption budget: %w", err)
	}
	return statefulSet, nil
}

// recoveryContainers bootstrap a primary from an archive instead of initdb (none without
// databaseRecoverFrom): fetch it from object storage, then lay out the base backup.
func recoveryContainers(s config.Database, offsite pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArray {
	if s.Recovery.From == "" {
		return nil
	}
	return corev1.ContainerArray{recoveryFetchContainer(s, offsite, security), recoveryBootstrapContainer(s, security)}
}

// recoveryVolumes hold the off-site encryption key for recovery-fetch, the one container
// of the pod that reads it (none without databaseRecoverFrom).
func recoveryVolumes(s config.Database, offsite pulumi.StringInput) corev1.VolumeArray {
	if s.Recovery.From == "" {
		return nil
	}
	return corev1.VolumeArray{offsiteKeyVolume(offsite)}
}

// recoveryEgress lets a recovering primary reach the object storage endpoint (its
// recovery-fetch init container reads the archive), until an update has recorded the recovery
// as finished (done): from the next update on the primary reaches nothing again, as without
// databaseRecoverFrom (the primary starts no connection of its own). A NetworkPolicy selects
// pods, not containers: while it exists, the postgres container may reach the endpoint's port
// too.
func recoveryEgress(s config.Database, done bool) networkingv1.NetworkPolicyEgressRuleArray {
	if s.Recovery.From == "" || done {
		return nil
	}
	return objectStorageEgress(s.Offsite)
}

// newDatabasePolicies admit the database's clients (the backend, the jobs, and the node
// port's sources) on 5432, and the monitoring namespace on the exporter's port.
func newDatabasePolicies(ctx *pulumi.Context, name string, args *Args, labels pulumi.StringMap, jobs []kube.Identity, parent pulumi.ResourceOption) error {
	clients := []networkingv1.NetworkPolicyPeerArgs{kube.FromPods(args.ClientPods)}
	for _, job := range jobs {
		clients = append(clients, kube.FromPods(job.Selector()))
	}
	if args.ExposeNodePorts {
		clients = append(clients, kube.FromCIDRs(args.NodePortFrom)...)
	}
	if err := kube.NewAllowPolicy(ctx, args.Namespace, kube.AllowPolicy{
		Resource: name + "-netpol", Name: args.Identity.Object(), Labels: labels, Pods: args.Identity.Selector(),
		Ingress: append(networkingv1.NetworkPolicyIngressRuleArray{
			kube.IngressRule(PostgresPort, clients...),
			kube.IngressRule(postgresMetricsPort, kube.FromNamespace(args.Monitoring.Namespace)),
		}, patroniIngress(args.Settings, args.Identity)...),
		Egress: append(recoveryEgress(args.Settings, args.RecoveryDone), patroniEgress(args.Settings, args.Identity)...),
	}, parent); err != nil {
		return fmt.Errorf("database network policy: %w", err)
	}
	return nil
}
