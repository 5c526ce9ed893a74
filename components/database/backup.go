package database

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// databaseCronJob is what a CronJob of the database needs: the backup, the release of unpaid
// orders (release.go).
type databaseCronJob struct {
	Resource       string // the Database component's name
	Namespace      pulumi.StringInput
	Identity       kube.Identity // of the job's pods
	Security       kube.PodSecurity
	Settings       config.Database
	ServiceAccount pulumi.StringInput
	Secret         pulumi.StringInput // database-credentials
	Config         pulumi.StringInput // database-config, holding the scripts
	Host           pulumi.StringInput // the database Service
	DatabasePods   pulumi.StringMap
}

// newBackup schedules pg_dump (custom format) into a volume of its own, keeping the newest
// BackupKeep dumps. The script is the embedded backup.sh, the same file the engine tests run.
func newBackup(ctx *pulumi.Context, b databaseCronJob, opts ...pulumi.ResourceOption) error {
	s, ns, name := b.Settings, b.Namespace, b.Resource
	labels := b.Identity.Labels(kube.VersionOf(s.Image))

	volume, err := corev1.NewPersistentVolumeClaim(ctx, name+"-backups", &corev1.PersistentVolumeClaimArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(b.Identity.Object("backups")), Namespace: ns, Labels: labels,
			// With WaitForFirstConsumer classes the claim binds only when the first backup
			// runs; Pulumi must not wait for that.
			Annotations: pulumi.StringMap{"pulumi.com/skipAwait": pulumi.String("true")},
		},
		Spec: corev1.PersistentVolumeClaimSpecArgs{
			AccessModes:      pulumi.StringArray{pulumi.String("ReadWriteOnce")},
			StorageClassName: pulumi.String(s.BackupStorageClass),
			Resources: &corev1.VolumeResourceRequirementsArgs{
				Requests: pulumi.StringMap{"storage": pulumi.String(s.BackupStorageSize)},
			},
		},
	}, opts...)
	if err != nil {
		return fmt.Errorf("backup volume: %w", err)
	}

	return kube.NewCronJob(ctx, kube.CronJob{
		// A run missed while the controller was down still starts within the hour.
		Schedule: s.BackupSchedule, StartingDeadline: 3600,
		JobRun: kube.JobRun{
			JobResource: name + "-backup", PolicyResource: name + "-backup-netpol", Name: b.Identity.Object("backup"),
			Namespace: ns, Identity: b.Identity, Labels: labels,
			BackoffLimit: 2, Deadline: 3600,
			Pod: kube.PodOptions{
				ServiceAccount: b.ServiceAccount,
				Security:       b.Security,
				Containers:     corev1.ContainerArray{pgDumpContainer(s, b.Host, b.Security)},
				Volumes: corev1.VolumeArray{
					corev1.VolumeArgs{Name: pulumi.String("backups"), PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSourceArgs{
						ClaimName: volume.Metadata.Name().Elem(),
					}},
					kube.ConfigMapVolume("config", b.Config),
					kube.SecretKeysVolume("secrets", b.Secret, backupPasswordKey),
					kube.EmptyDir("tmp", "64Mi"),
				},
			},
			Reaches: b.DatabasePods, Port: PostgresPort,
		},
	}, opts...)
}
