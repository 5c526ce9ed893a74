package database

import (
	"fmt"
	"maps"
	"strconv"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// migrateTimeoutSeconds bounds the bootstrap's wait for the database.
const migrateTimeoutSeconds = 300

// migrateDeadlineSeconds bounds a run of the Job (activeDeadlineSeconds), and so the life of
// the migrator's password of that run (VALID UNTIL): no container of the run logs in later.
const migrateDeadlineSeconds = migrateTimeoutSeconds + 900

// migratorPassDir holds the migrator's one-run password file (memory, never a disk).
const migratorPassDir = "/run/migrate"

// migrationJob is what the database-migrate Job needs.
type migrationJob struct {
	Resource       string
	Namespace      pulumi.StringInput
	Identity       kube.Identity
	Security       kube.PodSecurity
	Settings       config.Database
	ServiceAccount pulumi.StringInput
	Secret         pulumi.StringInput // database-credentials: only its superuser password is mounted
	Host           pulumi.StringInput // the database Service
	DatabasePods   pulumi.StringMap
}

// schemaRelease is the migration set the program carries: its newest version and a hash of
// everything a run applies (migrations, bootstrap, seed), which names the Job's run.
type schemaRelease struct {
	Version int
	Hash    string
	Files   map[string]string // the migrations ConfigMap: file name -> SQL
}

func newSchemaRelease(seed bool) (schemaRelease, error) {
	files, version, err := assets.Migrations()
	if err != nil {
		return schemaRelease{}, err
	}
	scripts := map[string]string{
		"bootstrap.sql": assets.BootstrapSQL(), "migrate-bootstrap.sh": assets.File("migrate-bootstrap.sh"),
		"migrate-verify.sh": assets.File("migrate-verify.sh"),
	}
	if seed {
		scripts["seed-dev.sql"] = assets.DevSeedSQL()
	}
	return schemaRelease{Version: version, Hash: kube.Checksum(kube.ChecksumOfData(files), kube.ChecksumOfData(scripts)), Files: mergeData(files, scripts)}, nil
}

// mergeData is the union of ConfigMap data maps (keys never overlap here).
func mergeData(data ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range data {
		maps.Copy(out, m)
	}
	return out
}

// newMigrationJob brings the database to the program's schema: bootstrap.sql as the superuser
// (roles, extension, the version of a shop created before migrations), then golang-migrate as
// the migrator (every migration not yet applied, each in one transaction, under the tool's
// advisory lock; a failed one leaves the version dirty and every later run refuses), then a
// check that the version is exactly the newest migration (and, in dev, the demo data). It runs
// again exactly when the migration set changes (the hash on its pod template); the
// credentials Job, the CronJobs and the backend wait for it.
func newMigrationJob(ctx *pulumi.Context, j migrationJob, release schemaRelease, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	labels := j.Identity.Labels(strconv.Itoa(release.Version))
	files, err := corev1.NewConfigMap(ctx, j.Resource+"-files", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(j.Identity.Object("migrations"), j.Namespace, labels),
		Data:     pulumi.ToStringMap(release.Files),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("database migrations config map: %w", err)
	}
	return kube.NewGateJob(ctx, kube.GateJob{
		Inputs: pulumi.StringMap{"checksum/migrations": pulumi.String(release.Hash), "schema/version": pulumi.String(strconv.Itoa(release.Version))},
		JobRun: kube.JobRun{
			JobResource: j.Resource, PolicyResource: j.Resource + "-netpol", Name: j.Identity.Object("migrate"),
			Namespace: j.Namespace, Identity: j.Identity, Labels: labels,
			Pod: kube.PodOptions{
				ServiceAccount: j.ServiceAccount,
				Security:       j.Security,
				InitContainers: corev1.ContainerArray{migrateBootstrapContainer(j), migrateContainer(j)},
				Containers:     corev1.ContainerArray{migrateVerifyContainer(j, release)},
				Volumes: corev1.VolumeArray{
					kube.ConfigMapVolume("migrations", files.Metadata.Name().Elem()),
					kube.SecretKeysVolume("superuser", j.Secret, superuserPasswordKey),
					kube.MemoryDir("pass", "1Mi"),
					kube.EmptyDir("tmp", "16Mi"),
				},
			},
			BackoffLimit: 2, Deadline: migrateDeadlineSeconds,
			Reaches: j.DatabasePods, Port: PostgresPort,
		},
	}, opts...)
}

// migrateBootstrapContainer runs migrate-bootstrap.sh as the superuser: the one container that
// holds the superuser's password (and no other key of the Secret).
func migrateBootstrapContainer(j migrationJob) corev1.ContainerArgs {
	s := j.Settings
	return corev1.ContainerArgs{
		Name:    pulumi.String("bootstrap"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.ToStringArray([]string{"sh", assets.MigrationsDir + "/migrate-bootstrap.sh"}),
		Env: append(libpqEnv(j.Host, s.User, s.Name, superuserPasswordKey),
			kube.Env("BOOTSTRAP_SQL", assets.MigrationsDir+"/bootstrap.sql"),
			kube.Env("MIGRATOR_PASSFILE", migratorPassDir+"/pgpass"),
			kube.Env("TIMEOUT_SECONDS", strconv.Itoa(migrateTimeoutSeconds)),
			kube.Env("MIGRATOR_VALID_SECONDS", strconv.Itoa(migrateDeadlineSeconds)),
		),
		VolumeMounts: corev1.VolumeMountArray{
			kube.ReadOnlyMount("migrations", assets.MigrationsDir),
			kube.ReadOnlyMount("superuser", postgresSecretsDir),
			kube.Mount("pass", migratorPassDir),
			kube.Mount("tmp", "/tmp"),
		},
		Resources:                kube.Requirements(kube.InitResources),
		TerminationMessagePolicy: pulumi.String("FallbackToLogsOnError"),
		SecurityContext:          j.Security.ContainerSecurityContext(),
	}
}

// migratorEnv is libpq's environment of the migrator: the password file of this run.
func migratorEnv(j migrationJob) corev1.EnvVarArray {
	return corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("PGHOST"), Value: j.Host},
		kube.Env("PGPORT", strconv.Itoa(PostgresPort)),
		kube.Env("PGUSER", "migrator"),
		kube.Env("PGDATABASE", j.Settings.Name),
		kube.Env("PGPASSFILE", migratorPassDir+"/pgpass"),
	}
}

// migratorMounts are the files of a migrator's container: the migrations and scripts, the
// run's password file (read-only), a writable /tmp.
func migratorMounts() corev1.VolumeMountArray {
	return corev1.VolumeMountArray{
		kube.ReadOnlyMount("migrations", assets.MigrationsDir),
		kube.ReadOnlyMount("pass", migratorPassDir),
		kube.Mount("tmp", "/tmp"),
	}
}

// migrateContainer is golang-migrate in its own image (entrypoint `migrate`), as the migrator.
func migrateContainer(j migrationJob) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:                     pulumi.String("migrate"),
		Image:                    pulumi.String(j.Settings.MigrateImage),
		Args:                     pulumi.ToStringArray(assets.MigrateArgs(assets.MigrationsDir)),
		Env:                      migratorEnv(j),
		VolumeMounts:             migratorMounts(),
		Resources:                kube.Requirements(kube.InitResources),
		TerminationMessagePolicy: pulumi.String("FallbackToLogsOnError"),
		SecurityContext:          j.Security.ContainerSecurityContext(),
	}
}

// migrateVerifyContainer runs migrate-verify.sh: the schema at exactly release.Version, clean;
// the demo data in dev.
func migrateVerifyContainer(j migrationJob, release schemaRelease) corev1.ContainerArgs {
	envs := append(migratorEnv(j), kube.Env("EXPECTED_VERSION", strconv.Itoa(release.Version)))
	if j.Settings.SeedData {
		envs = append(envs, kube.Env("SEED_SQL", assets.MigrationsDir+"/seed-dev.sql"))
	}
	return corev1.ContainerArgs{
		Name:                     pulumi.String("verify"),
		Image:                    pulumi.String(j.Settings.Image),
		Command:                  pulumi.ToStringArray([]string{"sh", assets.MigrationsDir + "/migrate-verify.sh"}),
		Env:                      envs,
		VolumeMounts:             migratorMounts(),
		Resources:                kube.Requirements(kube.InitResources),
		TerminationMessagePolicy: pulumi.String("FallbackToLogsOnError"),
		SecurityContext:          j.Security.ContainerSecurityContext(),
	}
}
