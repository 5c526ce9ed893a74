package database

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/kube"
)

// newReleaseUnpaid schedules release-unpaid.sh (shop.release_unpaid_orders): orders left
// unpaid longer than unpaidOrderMaxAgeMinutes are cancelled and their units go back to stock,
// every releaseUnpaidSchedule. Nobody holds the catalogue with orders they never pay.
func newReleaseUnpaid(ctx *pulumi.Context, j databaseCronJob, opts ...pulumi.ResourceOption) error {
	s := j.Settings
	return kube.NewCronJob(ctx, kube.CronJob{
		// A run is cheap and the next one is minutes away: a missed run is not worth starting late.
		Schedule: s.ReleaseUnpaidSchedule, StartingDeadline: 120,
		JobRun: kube.JobRun{
			JobResource: j.Resource + "-release-unpaid", PolicyResource: j.Resource + "-release-unpaid-netpol",
			Name: j.Identity.Object("release-unpaid"), Namespace: j.Namespace, Identity: j.Identity,
			Labels:       j.Identity.Labels(kube.VersionOf(s.Image)),
			BackoffLimit: 1, Deadline: 600,
			Pod: kube.PodOptions{
				ServiceAccount: j.ServiceAccount,
				Security:       j.Security,
				Containers:     corev1.ContainerArray{releaseUnpaidContainer(s, j.Host, j.Security)},
				Volumes: corev1.VolumeArray{
					kube.ConfigMapVolume("config", j.Config),
					kube.SecretKeysVolume("secrets", j.Secret, releaseUnpaidPasswordKey),
					kube.EmptyDir("tmp", "16Mi"),
				},
			},
			Reaches: j.DatabasePods, Port: PostgresPort,
		},
	}, opts...)
}
