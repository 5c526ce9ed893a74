package components

import (
	"fmt"
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
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
func DatabaseURL(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s", authenticatorRole, pgbouncerPort, database)
}

// drainFirst keeps a backend container serving for 5 s after its endpoint is removed, so
// requests already routed to the pod finish.
func drainFirst() *corev1.LifecycleArgs {
	return &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{Sleep: &corev1.SleepActionArgs{Seconds: pulumi.Int(5)}}}
}

// waitForDatabaseContainer holds the backend pod back, bounded, until the database accepts
// connections (wait-for-database.sh, in an image with pg_isready).
func waitForDatabaseContainer(image string, host pulumi.StringInput, database string, timeoutSeconds int, security PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("wait-for-database"),
		Image:   pulumi.String(image),
		Command: pulumi.StringArray{pulumi.String("sh"), pulumi.String("-c"), pulumi.String(assets.WaitForDatabaseScript())},
		Env: corev1.EnvVarArray{
			corev1.EnvVarArgs{Name: pulumi.String("DB_HOST"), Value: host},
			env("DB_PORT", strconv.Itoa(PostgresPort)),
			env("DB_USER", authenticatorRole),
			env("DB_NAME", database),
			env("TIMEOUT_SECONDS", strconv.Itoa(timeoutSeconds)),
		},
		Resources:       requirements(initResources),
		SecurityContext: security.containerSecurityContext(),
	}
}

// envoyContainer is the backend's only way in: rate limit, circuit breaker, outlier detection.
func envoyContainer(image string, rateLimit int, security PodSecurity) corev1.ContainerArgs {
	return serving(corev1.ContainerArgs{
		Name:  pulumi.String("envoy"),
		Image: pulumi.String(image),
		// One worker thread per CPU of its limit: without --concurrency Envoy starts one per
		// host thread, which its CPU limit then throttles.
		Command: pulumi.ToStringArray([]string{"envoy", "--config-path", "/etc/envoy/envoy.yaml", "--log-level", "warn",
			"--concurrency", strconv.Itoa(wholeCPUs(proxyResources.CPULimit))}),
		Ports: corev1.ContainerPortArray{containerPort("http", BackendPort), containerPort("metrics", envoyMetricsPort)},
		Env:   corev1.EnvVarArray{env("API_RATE_LIMIT", strconv.Itoa(rateLimit))},
		VolumeMounts: corev1.VolumeMountArray{
			fileMount("config", "/etc/envoy/envoy.yaml", "envoy.yaml"),
			mount("tmp", "/tmp"),
		},
		Lifecycle: drainFirst(),
	}, proxyResources, security.containerSecurityContext(), probes{
		startup:   probe(tcpCheck(BackendPort), startupTiming),
		readiness: probe(httpCheck("/health", BackendPort), readinessTiming),
		liveness:  probe(tcpCheck(BackendPort), livenessTiming),
	})
}

// postgrestContainer is the REST API. It listens on 127.0.0.1 only (API and admin server
// alike, PGRST_SERVER_HOST), so the kubelet reaches its /ready and /live through Envoy
// (envoy.yaml routes /health and /live); its secrets come from the backend Secret.
func postgrestContainer(s config.Backend, database string, secret pulumi.StringInput, security PodSecurity) corev1.ContainerArgs {
	return serving(corev1.ContainerArgs{
		Name:  pulumi.String("postgrest"),
		Image: pulumi.String(s.Image),
		Env: corev1.EnvVarArray{
			env("DATABASE_URL", DatabaseURL(database)),
			secretEnv("PGPASSWORD", secret, "db-password"),
			secretEnv("JWT_SECRET", secret, "jwt-secret"),
			env("LOG_LEVEL", s.LogLevel),
			env("PGRST_DB_URI", "$(DATABASE_URL)"),
			env("PGRST_JWT_SECRET", "$(JWT_SECRET)"),
			env("PGRST_LOG_LEVEL", "$(LOG_LEVEL)"),
			env("PGRST_DB_SCHEMAS", s.DBSchemas),
			env("PGRST_DB_ANON_ROLE", s.AnonRole),
			// Every read answers one bounded page (a longer list is cut, Content-Range says so).
			env("PGRST_DB_MAX_ROWS", strconv.Itoa(s.MaxRows)),
			env("PGRST_DB_POOL", strconv.Itoa(s.PostgRESTPoolSize)),
			env("PGRST_DB_PREPARED_STATEMENTS", "false"),
			env("PGRST_DB_CHANNEL_ENABLED", "false"),
			env("PGRST_SERVER_HOST", "127.0.0.1"),
			env("PGRST_SERVER_PORT", strconv.Itoa(postgrestPort)),
			env("PGRST_ADMIN_SERVER_PORT", strconv.Itoa(postgrestAdmin)),
		},
		Lifecycle: drainFirst(),
	}, s.Resources, security.containerSecurityContext(),
		servingProbes(httpCheck("/health", BackendPort), httpCheck("/live", BackendPort)))
}

// pgbouncerContainer is the connection-pool ambassador on 127.0.0.1:6432. Its probes run
// inside the pod and name their user (they run as a uid without a passwd entry, see
// wait-for-database.sh). Ready: it answers for the API's database; alive: it answers for its
// own admin console, which needs no server connection.
func pgbouncerContainer(image, database string, security PodSecurity) corev1.ContainerArgs {
	poolCheck := func(db string) probeCheck {
		return execCheck("pg_isready", "--host=127.0.0.1", "--port="+strconv.Itoa(pgbouncerPort),
			"--username="+authenticatorRole, "--dbname="+db, "--timeout=2")
	}
	return serving(corev1.ContainerArgs{
		Name:    pulumi.String("pgbouncer"),
		Image:   pulumi.String(image),
		Command: pulumi.ToStringArray([]string{"pgbouncer", "/etc/pgbouncer-config/pgbouncer.ini"}),
		Ports:   corev1.ContainerPortArray{containerPort("pgbouncer", pgbouncerPort)},
		VolumeMounts: corev1.VolumeMountArray{
			fileMount("config", "/etc/pgbouncer-config/pgbouncer.ini", "pgbouncer.ini"),
			readOnlyMount("secrets", backendSecretsDir),
			mount("tmp", "/tmp"),
		},
		Lifecycle: drainFirst(),
	}, proxyResources, security.containerSecurityContext(), servingProbes(poolCheck(database), poolCheck("pgbouncer")))
}
