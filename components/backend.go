package components

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Ports of the backend pod.
const (
	BackendPort       = 8080 // Envoy: the only port the Service and the NetworkPolicy open
	envoyAdminPort    = 9901 // 127.0.0.1 only
	postgrestPort     = 3000
	postgrestAdmin    = 3001
	pgbouncerPort     = 6432
	authenticatorRole = "authenticator"
	backendSecretsDir = "/etc/backend-secrets"
)

// BackendArgs configure the API tier.
type BackendArgs struct {
	Namespace      pulumi.StringInput
	Identity       Identity
	Security       PodSecurity
	Settings       BackendConfig
	WaitImage      string             // an image with pg_isready (the database's)
	DatabaseHost   pulumi.StringInput // from the Database's Output
	DatabaseName   string
	DatabasePods   pulumi.StringMap
	ClientPods     pulumi.StringMap // pods allowed to call the API (the frontend)
	APIPassword    pulumi.StringInput
	JWTSecret      pulumi.StringInput
	ExposeNodePort bool
	NodePortFrom   []string // CIDRs that may reach the node port
	// StartAfter must be complete before the Deployment changes (the database-credentials
	// Job: the database holds new credentials before pods use them).
	StartAfter []pulumi.Resource
	Spread     bool
}

// Backend is PostgREST behind an Envoy circuit breaker, pooling through a PgBouncer
// ambassador, waiting for the database before it starts.
type Backend struct {
	pulumi.ResourceState

	ServiceName pulumi.StringOutput
	Port        pulumi.IntOutput
}

// DatabaseURL is the API's connection string: always the pod's own PgBouncer, never the
// database directly, and never with the password (that comes from PGPASSWORD).
func DatabaseURL(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s", authenticatorRole, pgbouncerPort, database)
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
	labels := id.Labels(versionOf(s.Image))

	sa, err := newServiceAccount(ctx, name+"-serviceaccount", "backend", ns, labels, parent)
	if err != nil {
		return nil, fmt.Errorf("backend service account: %w", err)
	}
	userlist := args.APIPassword.ToStringOutput().ApplyT(func(password string) string {
		return PgBouncerUserlist(authenticatorRole, password)
	}).(pulumi.StringOutput)
	secret, err := corev1.NewSecret(ctx, name+"-secrets", &corev1.SecretArgs{
		Metadata: meta("backend-secrets", ns, labels),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			"jwt-secret":   args.JWTSecret,
			"db-password":  args.APIPassword,
			"userlist.txt": userlist,
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("backend secret: %w", err)
	}
	secretName := secret.Metadata.Name().Elem()

	envoyYAML, err := RenderEnvoyYAML(EnvoySettings{
		ListenPort: BackendPort, AdminPort: envoyAdminPort, APIPort: postgrestPort, APIAdminPort: postgrestAdmin,
		RateLimitPerSecond: s.APIRateLimit,
		MaxConnections:     s.CircuitMaxConnections, MaxPendingRequests: s.CircuitMaxPending,
		MaxRequests: s.CircuitMaxRequests, MaxRetries: s.CircuitMaxRetries,
		Consecutive5xx: s.OutlierConsecutive5xx, OutlierIntervalSeconds: s.OutlierIntervalSeconds,
		BaseEjectionSeconds: s.OutlierEjectionSeconds, RequestTimeoutSeconds: s.RequestTimeoutSeconds,
	})
	if err != nil {
		return nil, err
	}
	pgbouncerIni := args.DatabaseHost.ToStringOutput().ApplyT(func(host string) (string, error) {
		return RenderPgBouncerIni(PgBouncerSettings{
			ListenAddr: "127.0.0.1", ListenPort: pgbouncerPort,
			DatabaseName: args.DatabaseName, DatabaseHost: host, DatabasePort: PostgresPort,
			AuthFile:        backendSecretsDir + "/userlist.txt",
			DefaultPoolSize: s.PoolSize, MinPoolSize: 0, ReservePoolSize: max(s.PoolSize/4, 1),
			MaxClientConn: s.MaxClientConn, MaxDBConns: s.PoolSize + max(s.PoolSize/4, 1),
		})
	}).(pulumi.StringOutput)
	config, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: meta("backend-config", ns, labels),
		Data:     pulumi.StringMap{"envoy.yaml": pulumi.String(envoyYAML), "pgbouncer.ini": pgbouncerIni},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("backend config map: %w", err)
	}
	configHash := pgbouncerIni.ApplyT(func(ini string) string { return checksum(envoyYAML, ini) }).(pulumi.StringOutput)

	drain := &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{Sleep: &corev1.SleepActionArgs{Seconds: pulumi.Int(5)}}}
	hardened := args.Security.containerSecurityContext()
	waitForDatabase := corev1.ContainerArgs{
		Name:    pulumi.String("wait-for-database"),
		Image:   pulumi.String(args.WaitImage),
		Command: pulumi.StringArray{pulumi.String("sh"), pulumi.String("-c"), pulumi.String(WaitForDatabaseScript())},
		Env: corev1.EnvVarArray{
			corev1.EnvVarArgs{Name: pulumi.String("DB_HOST"), Value: args.DatabaseHost},
			env("DB_PORT", strconv.Itoa(PostgresPort)),
			env("DB_USER", authenticatorRole),
			env("DB_NAME", args.DatabaseName),
			env("TIMEOUT_SECONDS", strconv.Itoa(s.DBWaitTimeoutSeconds)),
		},
		Resources:       initResources.args(),
		SecurityContext: hardened,
	}
	envoyProbes := probes{
		startup:   probe(tcpCheck(BackendPort), startupTiming),
		readiness: probe(httpCheck("/health", BackendPort), readinessTiming),
		liveness:  probe(tcpCheck(BackendPort), livenessTiming),
	}
	envoy := corev1.ContainerArgs{
		Name:    pulumi.String("envoy"),
		Image:   pulumi.String(s.EnvoyImage),
		Command: pulumi.ToStringArray([]string{"envoy", "--config-path", "/etc/envoy/envoy.yaml", "--log-level", "warn"}),
		Ports:   corev1.ContainerPortArray{containerPort("http", BackendPort)},
		Env:     corev1.EnvVarArray{env("API_RATE_LIMIT", strconv.Itoa(s.APIRateLimit))},
		VolumeMounts: corev1.VolumeMountArray{
			fileMount("config", "/etc/envoy/envoy.yaml", "envoy.yaml"),
			mount("tmp", "/tmp"),
		},
		Resources:       proxyResources.args(),
		SecurityContext: hardened,
		StartupProbe:    envoyProbes.startup,
		ReadinessProbe:  envoyProbes.readiness,
		LivenessProbe:   envoyProbes.liveness,
		Lifecycle:       drain,
	}
	// PostgREST listens on 127.0.0.1 only (API and admin server alike, PGRST_SERVER_HOST), so
	// the kubelet reaches its /ready and /live through Envoy (envoy.yaml routes /health, /live).
	apiProbes := servingProbes(httpCheck("/health", BackendPort), httpCheck("/live", BackendPort))
	api := corev1.ContainerArgs{
		Name:  pulumi.String("postgrest"),
		Image: pulumi.String(s.Image),
		Env: corev1.EnvVarArray{
			env("DATABASE_URL", DatabaseURL(args.DatabaseName)),
			secretEnv("PGPASSWORD", secretName, "db-password"),
			secretEnv("JWT_SECRET", secretName, "jwt-secret"),
			env("LOG_LEVEL", s.LogLevel),
			env("PGRST_DB_URI", "$(DATABASE_URL)"),
			env("PGRST_JWT_SECRET", "$(JWT_SECRET)"),
			env("PGRST_LOG_LEVEL", "$(LOG_LEVEL)"),
			env("PGRST_DB_SCHEMAS", s.DBSchemas),
			env("PGRST_DB_ANON_ROLE", s.AnonRole),
			env("PGRST_DB_POOL", strconv.Itoa(s.DBPoolSize)),
			env("PGRST_DB_PREPARED_STATEMENTS", "false"),
			env("PGRST_DB_CHANNEL_ENABLED", "false"),
			env("PGRST_SERVER_HOST", "127.0.0.1"),
			env("PGRST_SERVER_PORT", strconv.Itoa(postgrestPort)),
			env("PGRST_ADMIN_SERVER_PORT", strconv.Itoa(postgrestAdmin)),
		},
		Resources:       s.Resources.args(),
		SecurityContext: hardened,
		StartupProbe:    apiProbes.startup,
		ReadinessProbe:  apiProbes.readiness,
		LivenessProbe:   apiProbes.liveness,
		Lifecycle:       drain,
	}
	// PgBouncer listens on 127.0.0.1 only, so its probes run inside the pod. The user is named:
	// they run as a uid without a passwd entry (see wait-for-database.sh). Ready: it answers
	// for the API's database; alive: it answers for its own admin console, which needs no
	// server connection.
	poolCheck := func(database string) probeCheck {
		return execCheck("pg_isready", "--host=127.0.0.1", "--port="+strconv.Itoa(pgbouncerPort),
			"--username="+authenticatorRole, "--dbname="+database, "--timeout=2")
	}
	poolProbes := servingProbes(poolCheck(args.DatabaseName), poolCheck("pgbouncer"))
	pgbouncer := corev1.ContainerArgs{
		Name:    pulumi.String("pgbouncer"),
		Image:   pulumi.String(s.PgBouncerImage),
		Command: pulumi.ToStringArray([]string{"pgbouncer", "/etc/pgbouncer-config/pgbouncer.ini"}),
		Ports:   corev1.ContainerPortArray{containerPort("pgbouncer", pgbouncerPort)},
		VolumeMounts: corev1.VolumeMountArray{
			fileMount("config", "/etc/pgbouncer-config/pgbouncer.ini", "pgbouncer.ini"),
			readOnlyMount("secrets", backendSecretsDir),
			mount("tmp", "/tmp"),
		},
		Resources:       proxyResources.args(),
		SecurityContext: hardened,
		StartupProbe:    poolProbes.startup,
		ReadinessProbe:  poolProbes.readiness,
		LivenessProbe:   poolProbes.liveness,
		Lifecycle:       drain,
	}

	spec := appsv1.DeploymentSpecArgs{
		Selector: &metav1.LabelSelectorArgs{MatchLabels: id.Selector()},
		Strategy: rollingUpdate(),
		Template: corev1.PodTemplateSpecArgs{
			Metadata: &metav1.ObjectMetaArgs{Labels: labels, Annotations: pulumi.StringMap{
				"checksum/config": configHash,
				// New credentials (apiDbPassword, jwtSecret) roll the pods onto them.
				"checksum/credentials": credentialsHash(args.APIPassword, args.JWTSecret),
			}},
			Spec: podOptions{
				ServiceAccount:   sa.Metadata.Name().Elem(),
				Security:         args.Security,
				InitContainers:   corev1.ContainerArray{waitForDatabase},
				Containers:       corev1.ContainerArray{envoy, api, pgbouncer},
				TerminationGrace: s.TerminationGraceSeconds,
				SpreadSelector:   spreadIf(args.Spread, id.Selector()),
				Volumes: corev1.VolumeArray{
					configMapVolume("config", config.Metadata.Name().Elem()),
					secretVolume("secrets", secretName),
					emptyDir("tmp", "64Mi"),
				},
			}.spec(),
		},
	}
	if !s.Autoscale {
		spec.Replicas = pulumi.Int(s.Replicas)
	}
	deployment, err := appsv1.NewDeployment(ctx, name+"-deployment", &appsv1.DeploymentArgs{
		Metadata: workloadMeta("backend", ns, labels),
		Spec:     spec,
	}, parent, pulumi.DependsOn(args.StartAfter))
	if err != nil {
		return nil, fmt.Errorf("backend deployment: %w", err)
	}
	if s.Autoscale {
		if err := newCPUAutoscaler(ctx, name+"-hpa", ns, labels, deployment, s, parent); err != nil {
			return nil, err
		}
	}

	svc, err := newService(ctx, ns, labels, service{
		Resource: name + "-service", Name: "backend-service", Type: "ClusterIP", Selector: id.Selector(),
		Port: BackendPort, TargetPort: BackendPort, PortName: "http",
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("backend service: %w", err)
	}
	callers := []networkingv1.NetworkPolicyPeerArgs{fromPods(args.ClientPods)}
	if args.ExposeNodePort {
		if _, err := newService(ctx, ns, labels, service{
			Resource: name + "-nodeport", Name: "backend-nodeport", Type: "NodePort", Selector: id.Selector(),
			Port: BackendPort, TargetPort: BackendPort, NodePort: s.NodePort, PortName: "http",
		}, parent); err != nil {
			return nil, fmt.Errorf("backend node port service: %w", err)
		}
		callers = append(callers, fromCIDRs(args.NodePortFrom)...)
	}
	if err := newDisruptionBudget(ctx, name+"-pdb", "backend", ns, labels, id.Selector(), maxOneUnavailable(), parent); err != nil {
		return nil, fmt.Errorf("backend disruption budget: %w", err)
	}
	if err := newAllowPolicy(ctx, ns, allowPolicy{
		Resource: name + "-netpol", Name: "backend", Labels: labels, Pods: id.Selector(),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{ingressRule(BackendPort, callers...)},
		Egress:  networkingv1.NetworkPolicyEgressRuleArray{egressRule(PostgresPort, fromPods(args.DatabasePods))},
	}, parent); err != nil {
		return nil, fmt.Errorf("backend network policy: %w", err)
	}

	b.ServiceName = svc.Metadata.Name().Elem()
	b.Port = pulumi.Int(BackendPort).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(b, pulumi.Map{"serviceName": b.ServiceName, "port": b.Port}); err != nil {
		return nil, err
	}
	return b, nil
}

// newCPUAutoscaler is the seed's `kubectl autoscale --cpu-percent --min --max`.
func newCPUAutoscaler(ctx *pulumi.Context, resource string, ns pulumi.StringInput, labels pulumi.StringMap, target *appsv1.Deployment, s BackendConfig, opts ...pulumi.ResourceOption) error {
	_, err := autoscalingv2.NewHorizontalPodAutoscaler(ctx, resource, &autoscalingv2.HorizontalPodAutoscalerArgs{
		Metadata: meta("backend", ns, labels),
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
