package components

import (
	"fmt"
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/database"
	"ecommerce-platform/components/kube"
)

// Ports of the backend pod.
const (
	BackendPort       = 8080 // Envoy: the only port the Service and the NetworkPolicy open
	envoyAdminPort    = 9901 // 127.0.0.1 only
	envoyMetricsPort  = 9902 // Envoy's statistics for Prometheus (envoy.yaml's metrics listener)
	postgrestPort     = 3000
	postgrestAdmin    = 3001
	pgbouncerPort     = 6432
	authenticatorRole = "authenticator"
	backendSecretsDir = "/etc/backend-secrets"
)

// DatabaseURL is the API's connection string: always the pod's own PgBouncer, never the
// database directly, and never with the password (that comes from PGPASSWORD).
func DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s", authenticatorRole, pgbouncerPort, name)
}

// drainFirst keeps a backend container serving for 5 s after its endpoint is removed, so
// requests already routed to the pod finish.
func drainFirst() *corev1.LifecycleArgs {
	return &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{Sleep: &corev1.SleepActionArgs{Seconds: pulumi.Int(5)}}}
}

// waitForDatabaseContainer holds the backend pod back, bounded, until the database accepts
// connections (wait-for-database.sh, in an image with pg_isready).
func waitForDatabaseContainer(image string, host pulumi.StringInput, name string, timeoutSeconds int, security kube.PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("wait-for-database"),
		Image:   pulumi.String(image),
		Command: pulumi.StringArray{pulumi.String("sh"), pulumi.String("-c"), pulumi.String(assets.WaitForDatabaseScript())},
		Env: corev1.EnvVarArray{
			corev1.EnvVarArgs{Name: pulumi.String("DB_HOST"), Value: host},
			kube.Env("DB_PORT", strconv.Itoa(database.PostgresPort)),
			kube.Env("DB_USER", authenticatorRole),
			kube.Env("DB_NAME", name),
			kube.Env("TIMEOUT_SECONDS", strconv.Itoa(timeoutSeconds)),
		},
		Resources:       kube.Requirements(kube.InitResources),
		SecurityContext: security.ContainerSecurityContext(),
	}
}

// envoyContainer is the backend's only way in: rate limit, circuit breaker, outlier detection.
func envoyContainer(image string, rateLimit int, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:  pulumi.String("envoy"),
		Image: pulumi.String(image),
		// One worker thread per CPU of its limit: without --concurrency Envoy starts one per
		// host thread, which its CPU limit then throttles.
		Command: pulumi.ToStringArray([]string{"envoy", "--config-path", "/etc/envoy/envoy.yaml", "--log-level", "warn",
			"--concurrency", strconv.Itoa(kube.WholeCPUs(kube.ProxyResources.CPULimit))}),
		Ports: corev1.ContainerPortArray{kube.ContainerPort("http", BackendPort), kube.ContainerPort("metrics", envoyMetricsPort)},
		Env:   corev1.EnvVarArray{kube.Env("API_RATE_LIMIT", strconv.Itoa(rateLimit))},
		VolumeMounts: corev1.VolumeMountArray{
			kube.FileMount("config", "/etc/envoy/envoy.yaml", "envoy.yaml"),
			kube.Mount("tmp", "/tmp"),
		},
		Lifecycle: drainFirst(),
	}, kube.ProxyResources, security.ContainerSecurityContext(), kube.Probes{
		Startup:   kube.Probe(kube.TCPCheck(BackendPort), kube.StartupTiming),
		Readiness: kube.Probe(kube.HTTPCheck("/health", BackendPort), kube.ReadinessTiming),
		Liveness:  kube.Probe(kube.TCPCheck(BackendPort), kube.LivenessTiming),
	})
}

// postgrestContainer is the REST API. It listens on 127.0.0.1 only (API and admin server
// alike, PGRST_SERVER_HOST), so the kubelet reaches its /ready and /live through Envoy
// (envoy.yaml routes /health and /live); its secrets come from the backend Secret.
func postgrestContainer(s config.Backend, database string, secret pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:  pulumi.String("postgrest"),
		Image: pulumi.String(s.Image),
		Env: corev1.EnvVarArray{
			kube.Env("DATABASE_URL", DatabaseURL(database)),
			kube.SecretEnv("PGPASSWORD", secret, "db-password"),
			kube.SecretEnv("JWT_SECRET", secret, "jwt-secret"),
			kube.Env("LOG_LEVEL", s.LogLevel),
			kube.Env("PGRST_DB_URI", "$(DATABASE_URL)"),
			kube.Env("PGRST_JWT_SECRET", "$(JWT_SECRET)"),
			kube.Env("PGRST_LOG_LEVEL", "$(LOG_LEVEL)"),
			kube.Env("PGRST_DB_SCHEMAS", s.DBSchemas),
			kube.Env("PGRST_DB_ANON_ROLE", s.AnonRole),
			// Every read answers one bounded page (a longer list is cut, Content-Range says so).
			kube.Env("PGRST_DB_MAX_ROWS", strconv.Itoa(s.MaxRows)),
			kube.Env("PGRST_DB_POOL", strconv.Itoa(s.PostgRESTPoolSize)),
			kube.Env("PGRST_DB_PREPARED_STATEMENTS", "false"),
			kube.Env("PGRST_DB_CHANNEL_ENABLED", "false"),
			kube.Env("PGRST_SERVER_HOST", "127.0.0.1"),
			kube.Env("PGRST_SERVER_PORT", strconv.Itoa(postgrestPort)),
			kube.Env("PGRST_ADMIN_SERVER_PORT", strconv.Itoa(postgrestAdmin)),
		},
		Lifecycle: drainFirst(),
	}, s.Resources, security.ContainerSecurityContext(),
		kube.ServingProbes(kube.HTTPCheck("/health", BackendPort), kube.HTTPCheck("/live", BackendPort)))
}

// pgbouncerContainer is the connection-pool ambassador on 127.0.0.1:6432. Its probes run
// inside the pod and name their user (they run as a uid without a passwd entry, see
// wait-for-database.sh). Ready: it answers for the API's database; alive: it answers for its
// own admin console, which needs no server connection.
func pgbouncerContainer(image, database string, security kube.PodSecurity) corev1.ContainerArgs {
	poolCheck := func(db string) kube.ProbeCheck {
		return kube.ExecCheck("pg_isready", "--host=127.0.0.1", "--port="+strconv.Itoa(pgbouncerPort),
			"--username="+authenticatorRole, "--dbname="+db, "--timeout=2")
	}
	return kube.Serving(corev1.ContainerArgs{
		Name:    pulumi.String("pgbouncer"),
		Image:   pulumi.String(image),
		Command: pulumi.ToStringArray([]string{"pgbouncer", "/etc/pgbouncer-config/pgbouncer.ini"}),
		Ports:   corev1.ContainerPortArray{kube.ContainerPort("pgbouncer", pgbouncerPort)},
		VolumeMounts: corev1.VolumeMountArray{
			kube.FileMount("config", "/etc/pgbouncer-config/pgbouncer.ini", "pgbouncer.ini"),
			kube.ReadOnlyMount("secrets", backendSecretsDir),
			kube.Mount("tmp", "/tmp"),
		},
		Lifecycle: drainFirst(),
	}, kube.ProxyResources, security.ContainerSecurityContext(), kube.ServingProbes(poolCheck(database), poolCheck("pgbouncer")))
}
