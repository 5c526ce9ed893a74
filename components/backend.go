package components

import (
	"fmt"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/database"
	"ecommerce-platform/components/kube"
)

// BackendArgs configure the API tier.
type BackendArgs struct {
	Namespace       pulumi.StringInput
	Identity        kube.Identity
	Security        kube.PodSecurity
	Settings        config.Backend
	WaitImage       string             // an image with pg_isready (the database's)
	DatabaseHost    pulumi.StringInput // from the Database's Output
	DatabaseName    string
	DatabasePods    pulumi.StringMap
	ClientPods      pulumi.StringMap // pods allowed to call the API (the frontend)
	APIPassword     pulumi.StringInput
	JWTSecret       pulumi.StringInput
	ExposeNodePorts bool
	NodePortFrom    []string // CIDRs that may reach the node port
	// StartAfter must be complete before the Deployment changes (the database-credentials
	// Job: the database holds new credentials before pods use them).
	StartAfter []pulumi.Resource
	// SchemaHash names the database-migrate run the pods start after: a new migration set
	// rolls them, so PostgREST reads the new schema (its schema cache is built at start; the
	// NOTIFY channel does not reach it through PgBouncer's transaction pooling).
	SchemaHash string
	Spread     bool
	Monitoring kube.Scrapers
}

// Backend is PostgREST behind an Envoy circuit breaker, pooling through a PgBouncer
// ambassador, waiting for the database before it starts.
type Backend struct {
	pulumi.ResourceState

	ServiceName pulumi.StringOutput
	Port        pulumi.IntOutput
}

// PgBouncerUserlist is one line of PgBouncer's auth_file: both fields in double quotes,
// a double quote inside doubled.
func PgBouncerUserlist(user, password string) string {
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return quote(user) + " " + quote(password) + "\n"
}

// NewBackend creates the backend tier.
func NewBackend(ctx *pulumi.Context, name string, args *BackendArgs, opts ...pulumi.ResourceOption) (*Backend, error) {
	b := &Backend{}
	if err := ctx.RegisterComponentResourceV2("ecommerce:index:Backend", name, nil, b, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(b)
	s, ns, id := args.Settings, args.Namespace, args.Identity
	labels := id.Labels(kube.VersionOf(s.Image))

	sa, err := kube.NewServiceAccount(ctx, name+"-serviceaccount", id.Object(), ns, labels, parent)
	if err != nil {
		return nil, fmt.Errorf("backend service account: %w", err)
	}
	secret, err := newBackendSecret(ctx, name, id, ns, labels, args.APIPassword, args.JWTSecret, parent)
	if err != nil {
		return nil, err
	}
	config, configHash, err := newBackendConfig(ctx, name, ns, labels, args, parent)
	if err != nil {
		return nil, err
	}
	pod := kube.PodOptions{
		ServiceAccount: sa.Metadata.Name().Elem(),
		Security:       args.Security,
		InitContainers: corev1.ContainerArray{
			waitForDatabaseContainer(args.WaitImage, args.DatabaseHost, args.DatabaseName, s.DBWaitTimeoutSeconds, args.Security),
		},
		Containers: corev1.ContainerArray{
			envoyContainer(s.EnvoyImage, s.APIRateLimit, args.Security),
			postgrestContainer(s, args.DatabaseName, secret, args.Security),
			pgbouncerContainer(s.PgBouncerImage, args.DatabaseName, args.Security),
		},
		TerminationGrace: s.TerminationGraceSeconds,
		SpreadSelector:   kube.SpreadIf(args.Spread, id.Selector()),
		Volumes: corev1.VolumeArray{
			kube.ConfigMapVolume("config", config),
			kube.SecretVolume("secrets", secret),
			kube.EmptyDir("tmp", "64Mi"),
		},
	}
	annotations := pulumi.ToStringMap(args.Monitoring.Annotations(envoyMetricsPort))
	for k, v := range map[string]pulumi.StringInput{
		"checksum/config": configHash,
		// New credentials (apiDbPassword, jwtSecret) roll the pods onto them.
		"checksum/credentials": database.CredentialsHash(args.APIPassword, args.JWTSecret),
		"checksum/migrations":  pulumi.String(args.SchemaHash),
	} {
		annotations[k] = v
	}
	if err := newBackendDeployment(ctx, name, args, labels, annotations, pod, parent); err != nil {
		return nil, err
	}
	svc, err := newBackendNetwork(ctx, name, args, labels, parent)
	if err != nil {
		return nil, err
	}

	b.ServiceName = svc.Metadata.Name().Elem()
	b.Port = pulumi.Int(BackendPort).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(b, pulumi.Map{"serviceName": b.ServiceName, "port": b.Port}); err != nil {
		return nil, err
	}
	return b, nil
}

// newBackendSecret holds what the backend's containers read: the JWT key, the API role's
// password and PgBouncer's auth file. It returns the Secret's name.
func newBackendSecret(ctx *pulumi.Context, name string, id kube.Identity, ns pulumi.StringInput, labels pulumi.StringMap, apiPassword, jwtSecret pulumi.StringInput, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	userlist := apiPassword.ToStringOutput().ApplyT(func(password string) string {
		return PgBouncerUserlist(authenticatorRole, password)
	}).(pulumi.StringOutput)
	secret, err := corev1.NewSecret(ctx, name+"-secrets", &corev1.SecretArgs{
		Metadata: kube.Meta(id.Object("secrets"), ns, labels),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			"jwt-secret":   jwtSecret,
			"db-password":  apiPassword,
			"userlist.txt": userlist,
		},
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("backend secret: %w", err)
	}
	return secret.Metadata.Name().Elem(), nil
}

// PgBouncerPool is the pool part of the deployed pgbouncer.ini (the engine tests and
// make bench-orders start PgBouncer with it): sizes from the config. A quarter of the pool
// stays open and warm (min_pool_size; connect_query warms each connection): at the HPA's
// maximum of 10 pods that is 50 of the database's 100 connections.
func PgBouncerPool(s config.Backend) assets.PgBouncerSettings {
	reserve := max(s.PgBouncerPoolSize/4, 1)
	return assets.PgBouncerSettings{
		DefaultPoolSize: s.PgBouncerPoolSize, MinPoolSize: reserve, ReservePoolSize: reserve,
		MaxClientConn: s.PgBouncerMaxClientConn, MaxDBConns: s.PgBouncerPoolSize + reserve,
		QueryTimeoutSeconds: PgBouncerQueryTimeoutSeconds, IdleTransactionTimeoutSeconds: PgBouncerIdleTransactionTimeoutSeconds,
	}
}

// PgBouncer's own limits on the backend's sessions (issue 27, finding 7). The database's
// statement_timeout of each role (bootstrap.sql: authenticator 10 s, web_user 5 s, web_anon
// 2 s) is a default that a session holding the authenticator's password may SET away; these
// are PgBouncer's, outside any session. The query limit is above the authenticator's 10 s, so
// a request's own statement_timeout still answers first with its error, and below Envoy's
// default route timeout (apiRequestTimeoutSeconds, 15 s). No request of PostgREST leaves its
// transaction idle for more than milliseconds; one left idle for 10 s holds its row locks for
// nobody, and closing its connection rolls it back at once.
const (
	PgBouncerQueryTimeoutSeconds           = 12
	PgBouncerIdleTransactionTimeoutSeconds = 10
)

// newBackendConfig renders envoy.yaml and pgbouncer.ini into the backend ConfigMap. It
// returns its name and a hash of its content, which rolls the pods when it changes.
func newBackendConfig(ctx *pulumi.Context, name string, ns pulumi.StringInput, labels pulumi.StringMap, args *BackendArgs, opts ...pulumi.ResourceOption) (pulumi.StringOutput, pulumi.StringOutput, error) {
	s := args.Settings
	envoyYAML, err := assets.RenderEnvoyYAML(assets.EnvoySettings{
		ListenPort: BackendPort, AdminPort: envoyAdminPort, MetricsPort: envoyMetricsPort, APIPort: postgrestPort, APIAdminPort: postgrestAdmin,
		RateLimitPerSecond: s.APIRateLimit,
		MaxConnections:     s.CircuitMaxConnections, MaxPendingRequests: s.CircuitMaxPending,
		MaxRequests: s.CircuitMaxRequests, MaxRetries: s.CircuitMaxRetries,
		Consecutive5xx: s.OutlierConsecutive5xx, OutlierIntervalSeconds: s.OutlierIntervalSeconds,
		BaseEjectionSeconds: s.OutlierEjectionSeconds, RequestTimeoutSeconds: s.RequestTimeoutSeconds,
	})
	if err != nil {
		return pulumi.StringOutput{}, pulumi.StringOutput{}, err
	}
	pgbouncerIni := args.DatabaseHost.ToStringOutput().ApplyT(func(host string) (string, error) {
		ini := PgBouncerPool(s)
		ini.ListenAddr, ini.ListenPort = "127.0.0.1", pgbouncerPort
		ini.DatabaseName, ini.DatabaseHost, ini.DatabasePort = args.DatabaseName, host, database.PostgresPort
		ini.AuthFile = backendSecretsDir + "/userlist.txt"
		return assets.RenderPgBouncerIni(ini)
	}).(pulumi.StringOutput)
	config, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(args.Identity.Object("config"), ns, labels),
		Data:     pulumi.StringMap{"envoy.yaml": pulumi.String(envoyYAML), "pgbouncer.ini": pgbouncerIni},
	}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, pulumi.StringOutput{}, fmt.Errorf("backend config map: %w", err)
	}
	hash := pgbouncerIni.ApplyT(func(ini string) string { return kube.Checksum(envoyYAML, ini) }).(pulumi.StringOutput)
	return config.Metadata.Name().Elem(), hash, nil
}

// newBackendDeployment runs the backend pods, after args.StartAfter; with autoscaling an HPA
// owns the replica count.
func newBackendDeployment(ctx *pulumi.Context, name string, args *BackendArgs, labels, annotations pulumi.StringMap, pod kube.PodOptions, parent pulumi.ResourceOption) error {
	s, ns, id := args.Settings, args.Namespace, args.Identity
	spec := appsv1.DeploymentSpecArgs{
		Selector: &metav1.LabelSelectorArgs{MatchLabels: id.Selector()},
		Strategy: kube.RollingUpdate(),
		Template: corev1.PodTemplateSpecArgs{
			Metadata: &metav1.ObjectMetaArgs{Labels: labels, Annotations: annotations},
			Spec:     pod.Spec(),
		},
	}
	if !s.Autoscale {
		spec.Replicas = pulumi.Int(s.Replicas)
	}
	deployment, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: kube.WorkloadMeta(id.Object(), ns, labels),
		Spec:     spec,
	}, parent, pulumi.DependsOn(args.StartAfter))
	if err != nil {
		return fmt.Errorf("backend deployment: %w", err)
	}
	if s.Autoscale {
		return newCPUAutoscaler(ctx, name+"-hpa", ns, labels, deployment, s, parent)
	}
	return nil
}

// newBackendNetwork is how the backend is reached: backend-service (returned), the node port
// when exposed, the disruption budget and the tier's NetworkPolicy.
func newBackendNetwork(ctx *pulumi.Context, name string, args *BackendArgs, labels pulumi.StringMap, parent pulumi.ResourceOption) (*corev1.Service, error) {
	s, ns, id := args.Settings, args.Namespace, args.Identity
	svc, err := kube.NewService(ctx, ns, labels, kube.Service{
		Resource: name + "-service", Name: id.Object("service"), Type: "ClusterIP", Selector: id.Selector(),
		Port: BackendPort, TargetPort: BackendPort, PortName: "http",
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("backend service: %w", err)
	}
	callers := []networkingv1.NetworkPolicyPeerArgs{kube.FromPods(args.ClientPods)}
	if args.ExposeNodePorts {
		if _, err := kube.NewService(ctx, ns, labels, kube.Service{
			Resource: name + "-nodeport", Name: id.Object("nodeport"), Type: "NodePort", Selector: id.Selector(),
			Port: BackendPort, TargetPort: BackendPort, NodePort: s.NodePort, PortName: "http",
		}, parent); err != nil {
			return nil, fmt.Errorf("backend node port service: %w", err)
		}
		callers = append(callers, kube.FromCIDRs(args.NodePortFrom)...)
	}
	if err := kube.NewDisruptionBudget(ctx, name+"-pdb", id.Object(), ns, labels, id.Selector(), kube.MaxOneUnavailable(), parent); err != nil {
		return nil, fmt.Errorf("backend disruption budget: %w", err)
	}
	if err := kube.NewAllowPolicy(ctx, ns, kube.AllowPolicy{
		Resource: name + "-netpol", Name: id.Object(), Labels: labels, Pods: id.Selector(),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{
			kube.IngressRule(BackendPort, callers...),
			kube.IngressRule(envoyMetricsPort, kube.FromNamespace(args.Monitoring.Namespace)),
		},
		Egress: networkingv1.NetworkPolicyEgressRuleArray{kube.EgressRule(database.PostgresPort, databasePeers(args)...)},
	}, parent); err != nil {
		return nil, fmt.Errorf("backend network policy: %w", err)
	}
	return svc, nil
}

// newCPUAutoscaler is the seed's `kubectl autoscale --cpu-percent --min --max`.
func newCPUAutoscaler(ctx *pulumi.Context, resource string, ns pulumi.StringInput, labels pulumi.StringMap, target *appsv1.Deployment, s config.Backend, opts ...pulumi.ResourceOption) error {
	_, err := autoscalingv2.NewHorizontalPodAutoscaler(ctx, resource, &autoscalingv2.HorizontalPodAutoscalerArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: target.Metadata.Name().Elem(), Namespace: ns, Labels: labels},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpecArgs{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReferenceArgs{
				ApiVersion: pulumi.String("apps/v1"),
				Kind:       pulumi.String("Deployment"),
				Name:       target.Metadata.Name().Elem(),
			},
			MinReplicas: pulumi.Int(s.MinReplicas),
			MaxReplicas: pulumi.Int(s.MaxReplicas),
			Metrics: autoscalingv2.MetricSpecArray{autoscalingv2.MetricSpecArgs{
				Type: pulumi.String("Resource"),
				Resource: &autoscalingv2.ResourceMetricSourceArgs{
					Name: pulumi.String("cpu"),
					Target: autoscalingv2.MetricTargetArgs{
						Type:               pulumi.String("Utilization"),
						AverageUtilization: pulumi.Int(s.CPUTargetPercent),
					},
				},
			}},
		},
	}, opts...)
	if err != nil {
		return fmt.Errorf("backend autoscaler: %w", err)
	}
	return nil
}

// databasePeers are the pods the backend may reach on 5432: the primary only. PostgREST
// never reads from a replica, so a compromised backend pod reaches none.
func databasePeers(args *BackendArgs) []networkingv1.NetworkPolicyPeerArgs {
	return []networkingv1.NetworkPolicyPeerArgs{kube.FromPods(args.DatabasePods)}
}
