package components

import (
	"fmt"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/config"
)

// backupJob is what the backup CronJob needs.
type backupJob struct {
	Resource       string // the Database component's name
	Namespace      pulumi.StringInput
	Identity       Identity // of the backup pods
	Security       PodSecurity
	Settings       config.Database
	ServiceAccount pulumi.StringInput
	Secret         pulumi.StringInput // database-credentials
	Config         pulumi.StringInput // database-config, holding backup.sh
	Host           pulumi.StringInput // the database Service
	DatabasePods   pulumi.StringMap
}

// newBackup schedules pg_dump (custom format) into a volume of its own, keeping the newest
// BackupKeep dumps. The script is the embedded backup.sh, the same file the engine tests run.
func newBackup(ctx *pulumi.Context, b backupJob, parent pulumi.ResourceOption) error {
	s, ns, name := b.Settings, b.Namespace, b.Resource
	labels := b.Identity.Labels(versionOf(s.Image))

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
	}, parent)
	if err != nil {
		return fmt.Errorf("backup volume: %w", err)
	}

	dump := pgDumpContainer(s, b.Host, b.Security)
	if _, err := batchv1.NewCronJob(ctx, name+"-backup", &batchv1.CronJobArgs{
		Metadata: workloadMeta(b.Identity.Object("backup"), ns, labels),
		Spec: batchv1.CronJobSpecArgs{
			Schedule: pulumi.String(s.BackupSchedule),
			// A run missed while the controller was down still starts within the hour;
			// later it waits for the next schedule (and never counts towards the 100
			// missed runs after which a CronJob stops scheduling).
			StartingDeadlineSeconds:    pulumi.Int(3600),
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			SuccessfulJobsHistoryLimit: pulumi.Int(3),
			FailedJobsHistoryLimit:     pulumi.Int(3),
			JobTemplate: batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels},
				Spec: batchv1.JobSpecArgs{
					BackoffLimit:          pulumi.Int(2),
					ActiveDeadlineSeconds: pulumi.Int(3600),
					Template: corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: labels},
						Spec: podOptions{
							ServiceAccount: b.ServiceAccount,
							Security:       b.Security,
							Containers:     corev1.ContainerArray{dump},
							RestartPolicy:  "OnFailure",
							Volumes: corev1.VolumeArray{
								corev1.VolumeArgs{Name: pulumi.String("backups"), PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSourceArgs{
									ClaimName: volume.Metadata.Name().Elem(),
								}},
								configMapVolume("config", b.Config),
								secretVolume("secrets", b.Secret),
								emptyDir("tmp", "64Mi"),
							},
						}.spec(),
					},
				},
			},
		},
	}, parent); err != nil {
		return fmt.Errorf("backup cron job: %w", err)
	}

	if err := newAllowPolicy(ctx, ns, allowPolicy{
		Resource: name + "-backup-netpol", Name: b.Identity.Object("backup"), Labels: labels, Pods: b.Identity.Selector(),
		Egress: networkingv1.NetworkPolicyEgressRuleArray{egressRule(PostgresPort, fromPods(b.DatabasePods))},
	}, parent); err != nil {
		return fmt.Errorf("backup network policy: %w", err)
	}
	return nil
}
