package database

import (
	"strconv"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
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
	return kube.SecretKeysVolume("offsite-key", offsite, offsiteKeyFile)
}

// archiveEnv is what archive.sh needs to reach the primary as the replicator.
func archiveEnv(primary pulumi.StringInput) corev1.EnvVarArray {
	return corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("PRIMARY_HOST"), Value: primary},
		kube.Env("PRIMARY_PORT", strconv.Itoa(PostgresPort)),
		kube.Env("REPLICATION_USER", replicationUser),
		kube.Env("PGPASSWORD_FILE", postgresSecretsDir+"/"+replicationPasswordKey),
		kube.Env("ARCHIVE_DIR", archiveDir),
		kube.Env("SLOT", ArchiverSlot),
	}
}

// archiveMounts are the archiver's mounts of the archive, its script and the password.
func archiveMounts() corev1.VolumeMountArray {
	return corev1.VolumeMountArray{
		kube.Mount("archive", archiveDir),
		kube.FileMount("config", "/scripts/archive.sh", "archive.sh"),
		kube.FileMount("config", "/scripts/archive-metrics.sh", "archive-metrics.sh"),
		kube.ReadOnlyMount("secrets", postgresSecretsDir),
		kube.Mount("tmp", "/tmp"),
		kube.Mount("status", archiverStatusDir),
	}
}

// walReceiverContainer is pg_receivewal (archive.sh receive): ready while it streams into
// the archive (a .partial segment is open), alive while the archive answers.
func walReceiverContainer(s config.Database, primary pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:         pulumi.String("wal-receiver"),
		Image:        pulumi.String(s.Image),
		Command:      pulumi.ToStringArray([]string{"sh", "/scripts/archive.sh", "receive"}),
		Env:          archiveEnv(primary),
		VolumeMounts: archiveMounts(),
	}, kube.SidecarResources, security.ContainerSecurityContext(),
		kube.ServingProbes(kube.ExecCheck("sh", "/scripts/archive.sh", "streaming"), kube.ExecCheck("sh", "/scripts/archive.sh", "alive-archive")))
}

// baseBackupContainer takes a verified base backup whenever the newest is older than the
// interval (archive.sh schedule); alive while its loop runs or a backup is in progress.
func baseBackupContainer(s config.Database, primary pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	alive := kube.ExecCheck("sh", "/scripts/archive.sh", "alive")
	environment := append(archiveEnv(primary),
		kube.Env("BASEBACKUP_INTERVAL_SECONDS", strconv.Itoa(s.Archive.BaseBackupIntervalHours*3600)),
		kube.Env("BASEBACKUP_KEEP", strconv.Itoa(s.Archive.BaseBackupKeep)),
		kube.Env("CHECK_SECONDS", strconv.Itoa(archiveCheckSecs)),
		kube.Env("STATUS_DIR", archiverStatusDir),
	)
	if s.Offsite.Enabled {
		environment = append(environment, kube.Env("OFFSITE_COPIES", "on")) // its metric is written too
	}
	// Started and alive while its loop runs (a first backup may take hours); ready while the
	// newest verified backup is current, so a failing backup shows as a NotReady pod.
	return kube.Serving(corev1.ContainerArgs{
		Name:         pulumi.String("base-backup"),
		Image:        pulumi.String(s.Image),
		Command:      pulumi.ToStringArray([]string{"sh", "/scripts/archive.sh", "schedule"}),
		Env:          environment,
		VolumeMounts: archiveMounts(),
	}, kube.BackupResources, security.ContainerSecurityContext(), kube.Probes{
		Startup:   kube.Probe(alive, kube.StartupTiming),
		Readiness: kube.Probe(kube.ExecCheck("sh", "/scripts/archive.sh", "current"), kube.ReadinessTiming),
		Liveness:  kube.Probe(alive, kube.LivenessTiming),
	})
}

// rcloneEnv configures rclone's remote "offsite" (S3) from the settings and the Secret.
func rcloneEnv(o config.Offsite, secret pulumi.StringInput) corev1.EnvVarArray {
	return corev1.EnvVarArray{
		kube.Env("RCLONE_CONFIG_OFFSITE_TYPE", "s3"),
		kube.Env("RCLONE_CONFIG_OFFSITE_PROVIDER", "Other"),
		kube.Env("RCLONE_CONFIG_OFFSITE_ENDPOINT", o.Endpoint),
		kube.Env("RCLONE_CONFIG_OFFSITE_REGION", o.Region),
		kube.Env("RCLONE_CONFIG_OFFSITE_FORCE_PATH_STYLE", "true"),
		kube.SecretEnv("RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID", secret, "access-key-id"),
		kube.SecretEnv("RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY", secret, "secret-access-key"),
		// No config file: the remote is all in the environment; HOME is the writable /tmp.
		kube.Env("RCLONE_CONFIG", "/tmp/rclone.conf"),
		kube.Env("HOME", "/tmp"),
	}
}

// offsiteMounts are what an rclone container that reads or writes the off-site archive
// mounts: its script, offsite-crypt.sh beside it and the encryption key.
func offsiteMounts(script string) corev1.VolumeMountArray {
	return corev1.VolumeMountArray{
		kube.FileMount("config", "/scripts/"+script, script),
		kube.FileMount("config", "/scripts/offsite-crypt.sh", "offsite-crypt.sh"),
		kube.ReadOnlyMount("offsite-key", offsiteKeyDir),
	}
}

// offsiteSyncContainer copies the archive, encrypted, to object storage every interval
// (offsite-sync.sh loop; copies only, never deletes); started and alive while its loop runs,
// ready while its last good copy is recent.
func offsiteSyncContainer(s config.Database, secret pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	alive := kube.ExecCheck("sh", "/scripts/offsite-sync.sh", "alive")
	return kube.Serving(corev1.ContainerArgs{
		Name:    pulumi.String("offsite-sync"),
		Image:   pulumi.String(s.Offsite.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/offsite-sync.sh", "loop"}),
		Env: append(rcloneEnv(s.Offsite, secret),
			kube.Env("ARCHIVE_DIR", archiveDir),
			kube.Env("REMOTE", s.Offsite.Remote()),
			kube.Env("INTERVAL_SECONDS", strconv.Itoa(s.Offsite.IntervalSeconds)),
			kube.Env("STATUS_DIR", archiverStatusDir),
			kube.Env("ENCRYPTION_KEY_FILE", offsiteKeyDir+"/"+offsiteKeyFile),
		),
		VolumeMounts: append(offsiteMounts("offsite-sync.sh"),
			kube.ReadOnlyMount("archive", archiveDir),
			kube.FileMount("config", "/scripts/archive-metrics.sh", "archive-metrics.sh"),
			kube.Mount("tmp", "/tmp"),
			kube.Mount("status", archiverStatusDir),
		),
	}, kube.SidecarResources, security.ContainerSecurityContext(), kube.Probes{
		Startup:   kube.Probe(alive, kube.StartupTiming),
		Readiness: kube.Probe(kube.ExecCheck("sh", "/scripts/offsite-sync.sh", "synced"), kube.ReadinessTiming),
		Liveness:  kube.Probe(alive, kube.LivenessTiming),
	})
}

// archiveMetricsContainer serves the metrics file the archiver's loops write
// (archive-metrics.sh) to Prometheus: ready once the file exists, alive while nginx listens.
func archiveMetricsContainer(s config.Database, security kube.PodSecurity) corev1.ContainerArgs {
	return kube.Serving(corev1.ContainerArgs{
		Name:    pulumi.String("metrics"),
		Image:   pulumi.String(s.Archive.MetricsImage),
		Command: pulumi.ToStringArray([]string{"nginx", "-c", "/etc/archive-metrics/nginx.conf", "-g", "daemon off;"}),
		Ports:   corev1.ContainerPortArray{kube.ContainerPort("metrics", archiveMetricsPort)},
		VolumeMounts: corev1.VolumeMountArray{
			kube.FileMount("config", "/etc/archive-metrics/nginx.conf", "archive-metrics-nginx.conf"),
			kube.ReadOnlyMount("status", archiverStatusDir),
			kube.Mount("tmp", "/tmp"),
		},
	}, kube.SidecarResources, security.ContainerSecurityContext(), kube.ServingProbes(kube.HTTPCheck("/metrics", archiveMetricsPort), kube.TCPCheck(archiveMetricsPort)))
}

// recoveryFetchContainer copies the archive a recovery reads from object storage onto the
// database's claim, decrypting it (recovery-fetch.sh; nothing on a claim that holds a
// database).
func recoveryFetchContainer(s config.Database, secret pulumi.StringInput, security kube.PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("recovery-fetch"),
		Image:   pulumi.String(s.Offsite.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/recovery-fetch.sh"}),
		Env: append(rcloneEnv(s.Offsite, secret),
			kube.Env("PGDATA", postgresDataDir+"/pgdata"),
			kube.Env("RESTORE_DIR", restoreDir),
			kube.Env("REMOTE", s.Recovery.Remote()),
			kube.Env("ENCRYPTION_KEY_FILE", offsiteKeyDir+"/"+offsiteKeyFile),
		),
		VolumeMounts: append(offsiteMounts("recovery-fetch.sh"),
			kube.Mount("data", postgresDataDir),
			kube.Mount("tmp", "/tmp"),
		),
		Resources:       kube.Requirements(kube.BackupResources),
		SecurityContext: security.ContainerSecurityContext(),
	}
}

// recoveryBootstrapContainer lays the newest verified base backup before the target into an
// empty PGDATA and sets up the recovery (recovery-bootstrap.sh).
func recoveryBootstrapContainer(s config.Database, security kube.PodSecurity) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("recovery-bootstrap"),
		Image:   pulumi.String(s.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/recovery-bootstrap.sh"}),
		Env: corev1.EnvVarArray{
			kube.Env("PGDATA", postgresDataDir+"/pgdata"),
			kube.Env("RESTORE_DIR", restoreDir),
			kube.Env("RECOVERY_TARGET", s.Recovery.Target),
		},
		VolumeMounts: corev1.VolumeMountArray{
			kube.Mount("data", postgresDataDir),
			kube.FileMount("config", "/scripts/recovery-bootstrap.sh", "recovery-bootstrap.sh"),
			kube.Mount("tmp", "/tmp"),
		},
		Resources:       kube.Requirements(kube.BackupResources),
		SecurityContext: security.ContainerSecurityContext(),
	}
}
