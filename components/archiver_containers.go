package components

import (
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
)

// ArchiverSlot is the archiver's replication slot and application_name: the name it has in
// synchronous_standby_names.
const ArchiverSlot = "database_archiver"

// Paths of the archiver pod and the recovering primary.
const (
	archiveDir         = "/archive" // the archive claim in the archiver pod
	archiverStatusDir  = "/status"
	archiveCheckSecs   = 60
	archiveMetricsPort = 9188                         // archive-metrics-nginx.conf
	restoreDir         = postgresDataDir + "/restore" // on the database's claim, beside PGDATA
)

// offsiteKeyFile is the Secret key holding the archive's off-site encryption key, and where
// the containers that read it (offsite-sync, recovery-fetch) have it.
const (
	offsiteKeyFile = "encryption-key"
	offsiteKeyDir  = "/offsite-key"
)

// offsiteKeyVolume is the off-site Secret's encryption key alone, as a file readable by the
// pod's group; only the containers that encrypt or decrypt the archive mount it.
func offsiteKeyVolume(offsite pulumi.StringInput) corev1.VolumeArgs {
	return secretKeysVolume("offsite-key", offsite, offsiteKeyFile)
}

// archiveEnv is what archive.sh needs to reach the primary as the replicator.
func archiveEnv(primary pulumi.StringInput) corev1.EnvVarArray {
	return corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("PRIMARY_HOST"), Value: primary},
		env("PRIMARY_PORT", strconv.Itoa(PostgresPort)),
		env("REPLICATION_USER", replicationUser),
		env("PGPASSWORD_FILE", postgresSecretsDir+"/"+replicationPasswordKey),
		env("ARCHIVE_DIR", archiveDir),
		env("SLOT", ArchiverSlot),
	}
}

// archiveMounts are the archiver's mounts of the archive, its script and the password.
func archiveMounts() corev1.VolumeMountArray {
	return corev1.VolumeMountArray{
		mount("archive", archiveDir),
		fileMount("config", "/scripts/archive.sh", "archive.sh"),
		fileMount("config", "/scripts/archive-metrics.sh", "archive-metrics.sh"),
		readOnlyMount("secrets", postgresSecretsDir),
		mount("tmp", "/tmp"),
		mount("status", archiverStatusDir),
	}
}

// walReceiverContainer is pg_receivewal (archive.sh receive): ready while it streams into
// the archive (a .partial segment is open), alive while the archive answers.
func walReceiverContainer(s config.Database, primary pulumi.StringInput, security PodSecurity) corev1.ContainerArgs {
	return serving(corev1.ContainerArgs{
		Name:         pulumi.String("wal-receiver"),
		Image:        pulumi.String(s.Image),
		Command:      pulumi.ToStringArray([]string{"sh", "/scripts/archive.sh", "receive"}),
		Env:          archiveEnv(primary),
		VolumeMounts: archiveMounts(),
	}, sidecarResources, security.containerSecurityContext(),
		servingProbes(execCheck("sh", "/scripts/archive.sh", "streaming"), execCheck("sh", "/scripts/archive.sh", "alive-archive")))
}

// baseBackupContainer takes a verified base backup whenever the newest is older than the
// interval (archive.sh schedule); alive while its loop runs or a backup is in progress.
func baseBackupContainer(s config.Database, primary pulumi.StringInput, security PodSecurity) corev1.ContainerArgs {
	alive := execCheck("sh", "/scripts/archive.sh", "alive")
	environment := append(archiveEnv(primary),
		env("BASEBACKUP_INTERVAL_SECONDS", strconv.Itoa(s.Archive.BaseBackupIntervalHours*3600)),
		env("BASEBACKUP_KEEP", strconv.Itoa(s.Archive.BaseBackupKeep)),
		env("CHECK_SECONDS", strconv.Itoa(archiveCheckSecs)),
		env("STATUS_DIR", archiverStatusDir),
	)
	if s.Offsite.Enabled {
		environment = append(environment, env("OFFSITE_COPIES", "on")) // its metric is written too
	}
	// Started and alive while its loop runs (a first backup may take hours); ready while the
	// newest verified backup is current, so a failing backup shows as a NotReady pod.
	return serving(corev1.ContainerArgs{
		Name:         pulumi.String("base-backup"),
		Image:        pulumi.String(s.Image),
		Command:      pulumi.ToStringArray([]string{"sh", "/scripts/archive.sh", "schedule"}),
		Env:          environment,
		VolumeMounts: archiveMounts(),
	}, backupResources, security.containerSecurityContext(), probes{
		startup:   probe(alive, startupTiming),
		readiness: probe(execCheck("sh", "/scripts/archive.sh", "current"), readinessTiming),
		liveness:  probe(alive, livenessTiming),
	})
}

// rcloneEnv configures rclone's remote "offsite" (S3) from the settings and the Secret.
func rcloneEnv(o config.Offsite, secret pulumi.StringInput) corev1.EnvVarArray {
	return corev1.EnvVarArray{
		env("RCLONE_CONFIG_OFFSITE_TYPE", "s3"),
		env("RCLONE_CONFIG_OFFSITE_PROVIDER", "Other"),
		env("RCLONE_CONFIG_OFFSITE_ENDPOINT", o.Endpoint),
		env("RCLONE_CONFIG_OFFSITE_REGION", o.Region),
		env("RCLONE_CONFIG_OFFSITE_FORCE_PATH_STYLE", "true"),
		secretEnv("RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID", secret, "access-key-id"),
		secretEnv("RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY", secret, "secret-access-key"),
		// No config file: the remote is all in the environment; HOME is the writable /tmp.
		env("RCLONE_CONFIG", "/tmp/rclone.conf"),
		env("HOME", "/tmp"),
	}
}

// offsiteMounts are what an rclone container that reads or writes the off-site archive
// mounts: its script, offsite-crypt.sh beside it and the encryption key.
func offsiteMounts(script string) corev1.VolumeMountArray {
	return corev1.VolumeMountArray{
		fileMount("config", "/scripts/"+script, script),
		fileMount("config", "/scripts/offsite-crypt.sh", "offsite-crypt.sh"),
		readOnlyMount("offsite-key", offsiteKeyDir),
	}
}

// offsiteSyncContainer copies the archive, encrypted, to object storage every interval
// (offsite-sync.sh loop; copies only, never deletes); started and alive while its loop runs,
// ready while its last good copy is recent.
func offsiteSyncContainer(s config.Database, secret pulumi.StringInput, security PodSecurity) corev1.ContainerArgs {
	alive := execCheck("sh", "/scripts/offsite-sync.sh", "alive")
	return serving(corev1.ContainerArgs{
		Name:    pulumi.String("offsite-sync"),
		Image:   pulumi.String(s.Offsite.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/offsite-sync.sh", "loop"}),
		Env: append(rcloneEnv(s.Offsite, secret),
			env("ARCHIVE_DIR", archiveDir),
			env("REMOTE", s.Offsite.Remote()),
			env("INTERVAL_SECONDS", strconv.Itoa(s.Offsite.IntervalSeconds)),
			env("STATUS_DIR", archiverStatusDir),
			env("ENCRYPTION_KEY_FILE", offsiteKeyDir+"/"+offsiteKeyFile),
		),
		VolumeMounts: append(offsiteMounts("offsite-sync.sh"),
			readOnlyMount("archive", archiveDir),
			fileMount("config", "/scripts/archive-metrics.sh", "archive-metrics.sh"),
			mount("tmp", "/tmp"),
			mount("status", archiverStatusDir),
		),
	}, sidecarResources, security.containerSecurityContext(), probes{
		startup:   probe(alive, startupTiming),
		readiness: probe(execCheck("sh", "/scripts/offsite-sync.sh", "synced"), readinessTiming),
		liveness:  probe(alive, livenessTiming),
	})
}

// archiveMetricsContainer serves the metrics file the archiver's loops write
// (archive-metrics.sh) to Prometheus: ready once the file exists, alive while nginx listens.
func archiveMetricsContainer(s config.Database, security PodSecurity) corev1.ContainerArgs {
	return serving(corev1.ContainerArgs{
		Name:    pulumi.String("metrics"),
		Image:   pulumi.String(s.Archive.MetricsImage),
		Command: pulumi.ToStringArray([]string{"nginx", "-c", "/etc/archive-metrics/nginx.conf", "-g", "daemon off;"}),
		Ports:   corev1.ContainerPortArray{containerPort("metrics", archiveMetricsPort)},
		VolumeMounts: corev1.VolumeMountArray{
			fileMount("config", "/etc/archive-metrics/nginx.conf", "archive-metrics-nginx.conf"),
			readOnlyMount("status", archiverStatusDir),
			mount("tmp", "/tmp"),
		},
	}, sidecarResources, security.containerSecurityContext(), servingProbes(httpCheck("/metrics", archiveMetricsPort), tcpCheck(archiveMetricsPort)))
}

// recoveryFetchContainer copies the archive a recovery reads from object storage onto the
// database's claim, decrypting it (recovery-fetch.sh; nothing on a claim that holds a
// database).
func recoveryFetchContainer(s config.Database, secret pulumi.StringInput, security PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("recovery-fetch"),
		Image:   pulumi.String(s.Offsite.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/recovery-fetch.sh"}),
		Env: append(rcloneEnv(s.Offsite, secret),
			env("PGDATA", postgresDataDir+"/pgdata"),
			env("RESTORE_DIR", restoreDir),
			env("REMOTE", s.Recovery.Remote()),
			env("ENCRYPTION_KEY_FILE", offsiteKeyDir+"/"+offsiteKeyFile),
		),
		VolumeMounts: append(offsiteMounts("recovery-fetch.sh"),
			mount("data", postgresDataDir),
			mount("tmp", "/tmp"),
		),
		Resources:       requirements(backupResources),
		SecurityContext: security.containerSecurityContext(),
	}
}

// recoveryBootstrapContainer lays the newest verified base backup before the target into an
// empty PGDATA and sets up the recovery (recovery-bootstrap.sh).
func recoveryBootstrapContainer(s config.Database, security PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("recovery-bootstrap"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/recovery-bootstrap.sh"}),
		Env: corev1.EnvVarArray{
			env("PGDATA", postgresDataDir+"/pgdata"),
			env("RESTORE_DIR", restoreDir),
			env("RECOVERY_TARGET", s.Recovery.Target),
		},
		VolumeMounts: corev1.VolumeMountArray{
			mount("data", postgresDataDir),
			fileMount("config", "/scripts/recovery-bootstrap.sh", "recovery-bootstrap.sh"),
			mount("tmp", "/tmp"),
		},
		Resources:       requirements(backupResources),
		SecurityContext: security.containerSecurityContext(),
	}
}
