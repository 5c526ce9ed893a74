package database

import (
	"fmt"
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
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
func postgresContainer(s config.Database, security kube.PodSecurity) corev1.ContainerArgs {
	c := postgresServer(s, security)
	c.Env = append(c.Env.(corev1.EnvVarArray), kube.Env("POSTGRES_PASSWORD_FILE", postgresSecretsDir+"/"+superuserPasswordKey))
	c.VolumeMounts = append(c.VolumeMounts.(corev1.VolumeMountArray), kube.ReadOnlyMount("secrets", postgresSecretsDir))
	return c
}

// postgresServer is PostgreSQL 15 through its image's entrypoint: first start runs initdb
// (the schema is the database-migrate Job's); postgresql.conf comes from the ConfigMap; the probes name their user (they
// run as a uid without a passwd entry).
func postgresServer(s config.Database, security kube.PodSecurity) corev1.ContainerArgs {
	isReady := kube.ExecCheck("pg_isready", "--host=127.0.0.1", "--port="+strconv.Itoa(PostgresPort), "--username="+s.User, "--dbname="+s.Name)
	return kube.Serving(corev1.ContainerArgs{
		Name:  pulumi.String("postgres"),
		Image: pulumi.String(s.Image),
		Args:  pulumi.StringArray{pulumi.String("-c"), pulumi.String("config_file=" + postgresConfigPath)},
		Ports: corev1.ContainerPortArray{kube.ContainerPort("postgres", PostgresPort)},
		Env: corev1.EnvVarArray{
			kube.Env("POSTGRES_USER", s.User),
			kube.Env("POSTGRES_DB", s.Name),
			kube.Env("PGDATA", postgresDataDir+"/pgdata"),
		},
		VolumeMounts: corev1.VolumeMountArray{
			kube.Mount("data", postgresDataDir),
			kube.FileMount("config", postgresConfigPath, "postgresql.conf"),
			kube.FileMount("config", postgresHBAPath, "pg_hba.conf"),
			kube.Mount("tmp", "/tmp"),
			kube.Mount("run", postgresSocketDir),
		},
	}, s.Resources, security.ContainerSecurityContext(), kube.ServingProbes(isReady, kube.TCPCheck(PostgresPort)))
}

// exporterQueriesPath is where the exporter reads its queries (a ConfigMap key).
const exporterQueriesPath = "/etc/postgres-exporter/queries.yaml"

// postgresExporterContainer serves the database's metrics on :9187, logging in as the monitor
// role over the pod's loopback (pg_hba.conf admits it from nowhere else) with the one key it
// mounts; it reads the password when it starts.
func postgresExporterContainer(s config.Database, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:  pulumi.String("postgres-exporter"),
		Image: pulumi.String(s.ExporterImage),
		Ports: corev1.ContainerPortArray{kube.ContainerPort("metrics", postgresMetricsPort)},
		Env: corev1.EnvVarArray{
			kube.Env("DATA_SOURCE_URI", fmt.Sprintf("127.0.0.1:%d/%s?sslmode=disable", PostgresPort, s.Name)),
			kube.Env("DATA_SOURCE_USER", monitorRole),
			kube.Env("DATA_SOURCE_PASS_FILE", postgresSecretsDir+"/"+monitorPasswordKey),
			// pg_archiver_*: the archiver's lag (exporter-queries.yaml).
			kube.Env("PG_EXPORTER_EXTEND_QUERY_PATH", exporterQueriesPath),
		},
		VolumeMounts: corev1.VolumeMountArray{
			kube.ReadOnlyMount("monitor", postgresSecretsDir),
			kube.FileMount("config", exporterQueriesPath, "exporter-queries.yaml"),
		},
	}, kube.SidecarResources, security.ContainerSecurityContext(), kube.ServingProbes(kube.HTTPCheck("/", postgresMetricsPort), kube.TCPCheck(postgresMetricsPort)))
}

// libpqEnv is how a script of the postgres image reaches the database: host, port, role,
// database and the file holding the role's password (the scripts read PGPASSWORD_FILE).
func libpqEnv(host pulumi.StringInput, user, database, passwordFile string) corev1.EnvVarArray {
	return corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("PGHOST"), Value: host},
		kube.Env("PGPORT", strconv.Itoa(PostgresPort)),
		kube.Env("PGUSER", user),
		kube.Env("PGDATABASE", database),
		kube.Env("PGPASSWORD_FILE", postgresSecretsDir+"/"+passwordFile),
	}
}

// pgDumpContainer runs backup.sh (pg_dump into the backup claim) as the backup role.
func pgDumpContainer(s config.Database, host pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("pg-dump"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.StringArray{pulumi.String("sh"), pulumi.String("/scripts/backup.sh")},
		Env: append(libpqEnv(host, backupRole, s.Name, backupPasswordKey),
			kube.Env("BACKUP_DIR", BackupDir),
			kube.Env("BACKUP_KEEP", strconv.Itoa(s.BackupKeep)),
		),
		VolumeMounts: corev1.VolumeMountArray{
			kube.Mount("backups", BackupDir),
			kube.FileMount("config", "/scripts/backup.sh", "backup.sh"),
			kube.ReadOnlyMount("secrets", postgresSecretsDir),
			kube.Mount("tmp", "/tmp"),
		},
		Resources:       kube.Requirements(kube.BackupResources),
		SecurityContext: security.ContainerSecurityContext(),
	}
}

// releaseUnpaidContainer runs release-unpaid.sh (shop.release_unpaid_orders) as the
// release_unpaid role.
func releaseUnpaidContainer(s config.Database, host pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("release-unpaid"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.StringArray{pulumi.String("sh"), pulumi.String("/scripts/release-unpaid.sh")},
		Env:     append(libpqEnv(host, releaseUnpaidRole, s.Name, releaseUnpaidPasswordKey), kube.Env("UNPAID_MAX_AGE_MINUTES", strconv.Itoa(s.UnpaidOrderMaxAgeMinutes))),
		VolumeMounts: corev1.VolumeMountArray{
			kube.FileMount("config", "/scripts/release-unpaid.sh", "release-unpaid.sh"),
			kube.ReadOnlyMount("secrets", postgresSecretsDir),
			kube.Mount("tmp", "/tmp"),
		},
		Resources:                kube.Requirements(kube.InitResources),
		TerminationMessagePolicy: pulumi.String("FallbackToLogsOnError"),
		SecurityContext:          security.ContainerSecurityContext(),
	}
}
