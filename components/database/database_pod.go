package database

import (
	"fmt"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// databaseFiles are the database's ConfigMap of postgresql.conf and the jobs' scripts
// (Config) and a hash of postgresql.conf that rolls the pod. The schema is not the pod's: the
// database-migrate Job applies it (migrations.go).
type databaseFiles struct {
	Config   pulumi.StringOutput
	ConfHash string
}

// newDatabaseFiles renders postgresql.conf and pg_hba.conf and creates the ConfigMaps.
func newDatabaseFiles(ctx *pulumi.Context, name string, id kube.Identity, ns pulumi.StringInput, labels pulumi.StringMap, s config.Database, opts ...pulumi.ResourceOption) (databaseFiles, error) {
	postgresConf, err := assets.RenderPostgresConf(postgresSettings(s, id))
	if err != nil {
		return databaseFiles{}, err
	}
	configData := map[string]string{
		"postgresql.conf": postgresConf, "pg_hba.conf": assets.File("pg_hba.conf"),
		"backup.sh": assets.BackupScript(), "credentials-sync.sh": assets.CredentialsSyncScript(), "replica-bootstrap.sh": assets.File("replica-bootstrap.sh"),
		"archive.sh": assets.File("archive.sh"), "offsite-sync.sh": assets.File("offsite-sync.sh"), "offsite-crypt.sh": assets.File("offsite-crypt.sh"),
		"archive-metrics.sh": assets.File("archive-metrics.sh"), "archive-metrics-nginx.conf": assets.File("archive-metrics-nginx.conf"),
		"exporter-queries.yaml": assets.File("exporter-queries.yaml"),
		"recovery-fetch.sh":     assets.File("recovery-fetch.sh"), "recovery-bootstrap.sh": assets.File("recovery-bootstrap.sh"),
		"release-unpaid.sh": assets.ReleaseUnpaidScript(),
	}
	config, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(id.Object("config"), ns, labels),
		Data:     pulumi.ToStringMap(configData),
	}, opts...)
	if err != nil {
		return databaseFiles{}, fmt.Errorf("database config map: %w", err)
	}
	return databaseFiles{Config: config.Metadata.Name().Elem(), ConfHash: kube.Checksum(postgresConf, configData["pg_hba.conf"])}, nil
}

// postgresSettings are postgresql.conf's values: the primary's and replicas' file, and the
// file Patroni's members include.
func postgresSettings(s config.Database, id kube.Identity) assets.PostgresSettings {
	return assets.PostgresSettings{
		Port:                    PostgresPort,
		MaxConnections:          s.MaxConnections,
		SharedBuffers:           s.SharedBuffers,
		WorkMem:                 s.WorkMem,
		EffectiveCacheSize:      s.EffectiveCacheSize,
		LogMinDurationStatement: s.LogMinDurationMs,
		UnixSocketDir:           postgresSocketDir,
		HBAFile:                 postgresHBAPath,
		ReplicaWalKeepSize:      s.ReplicaWalKeepSize,
		SynchronousStandbys:     synchronousStandbys(s, id.Object("replica")),
	}
}

// synchronousStandbys is synchronous_standby_names: ANY n of the replicas (application_name
// = their slot, the pod name) and the archiver; "" when commits are asynchronous or Patroni
// sets it (databaseFailover: ANY n of the members).
func synchronousStandbys(s config.Database, replicaName string) string {
	if s.SyncStandbys == 0 || s.Failover.Enabled {
		return ""
	}
	var names []string
	for i := range s.Replicas {
		names = append(names, slotName(fmt.Sprintf("%s-%d", replicaName, i)))
	}
	if s.Archive.Enabled {
		names = append(names, ArchiverSlot)
	}
	return fmt.Sprintf("ANY %d (%s)", s.SyncStandbys, strings.Join(names, ", "))
}

// slotName is a pod name as a replication slot name (what replica-bootstrap.sh derives).
func slotName(pod string) string { return strings.NewReplacer("-", "_", ".", "_").Replace(pod) }

// databaseVolumes are the volumes of a database pod, primary or replica: besides the config,
// scratch and the socket folder, two volumes of one Secret key each, the key its server side
// reads (secrets: the primary's superuser password, a replica's replication password) and the
// exporter's (monitor).
func databaseVolumes(files databaseFiles, secret pulumi.StringInput, serverKey string) corev1.VolumeArray {
	return corev1.VolumeArray{
		kube.ConfigMapVolume("config", files.Config),
		kube.SecretKeysVolume("secrets", secret, serverKey),
		kube.SecretKeysVolume("monitor", secret, monitorPasswordKey),
		kube.EmptyDir("tmp", "64Mi"),
		kube.EmptyDir("run", "16Mi"),
	}
}

// claimTemplate is a ReadWriteOnce claim of a class and size.
func claimTemplate(name string, labels pulumi.StringMap, class, size string) corev1.PersistentVolumeClaimTypeArgs {
	return corev1.PersistentVolumeClaimTypeArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(name), Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpecArgs{
			AccessModes:      pulumi.StringArray{pulumi.String("ReadWriteOnce")},
			StorageClassName: pulumi.String(class),
			Resources: &corev1.VolumeResourceRequirementsArgs{
				Requests: pulumi.StringMap{"storage": pulumi.String(size)},
			},
		},
	}
}
