package components

import (
	"fmt"
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
)

// Ports and paths of the database pod.
const (
	PostgresPort        = 5432
	postgresMetricsPort = 9187
	postgresSecretsDir  = "/etc/database-secrets"
	postgresDataDir     = "/var/lib/postgresql/data"
	postgresSocketDir   = "/var/run/postgresql"
	postgresConfigPath  = "/etc/postgresql/postgresql.conf"
	postgresHBAPath     = "/etc/postgresql/pg_hba.conf"
)

// replicationUser is the role the replicas and the archiver stream with (credentials-sync.sh
// creates it).
const replicationUser = "replicator"

// BackupDir is where the backup volume is mounted in the backup job's pod.
const BackupDir = "/backups"

// postgresContainer is the primary's PostgreSQL 15: postgresServer with the superuser's
// password, which the image's first start (initdb) sets; the one key of the Secret it mounts.
func postgresContainer(s config.Database, security PodSecurity) corev1.ContainerArgs {
	c := postgresServer(s, security)
	c.Env = append(c.Env.(corev1.EnvVarArray), env("POSTGRES_PASSWORD_FILE", postgresSecretsDir+"/"+superuserPasswordKey))
	c.VolumeMounts = append(c.VolumeMounts.(corev1.VolumeMountArray), readOnlyMount("secrets", postgresSecretsDir))
	return c
}

// postgresServer is PostgreSQL 15 through its image's entrypoint: first start runs initdb
// (the schema is the database-migrate Job's); postgresql.conf comes from the ConfigMap; the probes name their user (they
// run as a uid without a passwd entry).
func postgresServer(s config.Database, security PodSecurity) corev1.ContainerArgs {
	isReady := execCheck("pg_isready", "--host=127.0.0.1", "--port="+strconv.Itoa(PostgresPort), "--username="+s.User, "--dbname="+s.Name)
	return serving(corev1.ContainerArgs{
		Name:  pulumi.String("postgres"),
		Image: pulumi.String(s.Image),
		Args:  pulumi.StringArray{pulumi.String("-c"), pulumi.String("config_file=" + postgresConfigPath)},
		Ports: corev1.ContainerPortArray{containerPort("postgres", PostgresPort)},
		Env: corev1.EnvVarArray{
			env("POSTGRES_USER", s.User),
			env("POSTGRES_DB", s.Name),
			env("PGDATA", postgresDataDir+"/pgdata"),
		},
		VolumeMounts: corev1.VolumeMountArray{
			mount("data", postgresDataDir),
			fileMount("config", postgresConfigPath, "postgresql.conf"),
			fileMount("config", postgresHBAPath, "pg_hba.conf"),
			mount("tmp", "/tmp"),
			mount("run", postgresSocketDir),
		},
	}, s.Resources, security.containerSecurityContext(), servingProbes(isReady, tcpCheck(PostgresPort)))
}

// exporterQueriesPath is where the exporter reads its queries (a ConfigMap key).
const exporterQueriesPath = "/etc/postgres-exporter/queries.yaml"

// postgresExporterContainer serves the database's metrics on :9187, logging in as the monitor
// role over the pod's loopback (pg_hba.conf admits it from nowhere else) with the one key it
// mounts; it reads the password when it starts.
func postgresExporterContainer(s config.Database, security PodSecurity) corev1.ContainerArgs {
	return serving(corev1.ContainerArgs{
		Name:  pulumi.String("postgres-exporter"),
		Image: pulumi.String(s.ExporterImage),
		Ports: corev1.ContainerPortArray{containerPort("metrics", postgresMetricsPort)},
		Env: corev1.EnvVarArray{
			env("DATA_SOURCE_URI", fmt.Sprintf("127.0.0.1:%d/%s?sslmode=disable", PostgresPort, s.Name)),
			env("DATA_SOURCE_USER", monitorRole),
			env("DATA_SOURCE_PASS_FILE", postgresSecretsDir+"/"+monitorPasswordKey),
			// pg_archiver_*: the archiver's lag (exporter-queries.yaml).
			env("PG_EXPORTER_EXTEND_QUERY_PATH", exporterQueriesPath),
		},
		VolumeMounts: corev1.VolumeMountArray{
			readOnlyMount("monitor", postgresSecretsDir),
			fileMount("config", exporterQueriesPath, "exporter-queries.yaml"),
		},
	}, sidecarResources, security.containerSecurityContext(), servingProbes(httpCheck("/", postgresMetricsPort), tcpCheck(postgresMetricsPort)))
}

// libpqEnv is how a script of the postgres image reaches the database: host, port, role,
// database and the file holding the role's password (the scripts read PGPASSWORD_FILE).
func libpqEnv(host pulumi.StringInput, user, database, passwordFile string) corev1.EnvVarArray {
	return corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("PGHOST"), Value: host},
		env("PGPORT", strconv.Itoa(PostgresPort)),
		env("PGUSER", user),
		env("PGDATABASE", database),
		env("PGPASSWORD_FILE", postgresSecretsDir+"/"+passwordFile),
	}
}

// pgDumpContainer runs backup.sh (pg_dump into the backup claim) as the backup role.
func pgDumpContainer(s config.Database, host pulumi.StringInput, security PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("pg-dump"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.StringArray{pulumi.String("sh"), pulumi.String("/scripts/backup.sh")},
		Env: append(libpqEnv(host, backupRole, s.Name, backupPasswordKey),
			env("BACKUP_DIR", BackupDir),
			env("BACKUP_KEEP", strconv.Itoa(s.BackupKeep)),
		),
		VolumeMounts: corev1.VolumeMountArray{
			mount("backups", BackupDir),
			fileMount("config", "/scripts/backup.sh", "backup.sh"),
			readOnlyMount("secrets", postgresSecretsDir),
			mount("tmp", "/tmp"),
		},
		Resources:       requirements(backupResources),
		SecurityContext: security.containerSecurityContext(),
	}
}

// releaseUnpaidContainer runs release-unpaid.sh (shop.release_unpaid_orders) as the
// release_unpaid role.
func releaseUnpaidContainer(s config.Database, host pulumi.StringInput, security PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("release-unpaid"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.StringArray{pulumi.String("sh"), pulumi.String("/scripts/release-unpaid.sh")},
		Env:     append(libpqEnv(host, releaseUnpaidRole, s.Name, releaseUnpaidPasswordKey), env("UNPAID_MAX_AGE_MINUTES", strconv.Itoa(s.UnpaidOrderMaxAgeMinutes))),
		VolumeMounts: corev1.VolumeMountArray{
			fileMount("config", "/scripts/release-unpaid.sh", "release-unpaid.sh"),
			readOnlyMount("secrets", postgresSecretsDir),
			mount("tmp", "/tmp"),
		},
		Resources:                requirements(initResources),
		TerminationMessagePolicy: pulumi.String("FallbackToLogsOnError"),
		SecurityContext:          security.containerSecurityContext(),
	}
}
