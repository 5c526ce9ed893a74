package mocked

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/tests/testkit"
)

// Unpaid orders give their units back for real in every stack: the release-unpaid CronJob
// runs the embedded release-unpaid.sh on the configured schedule with the configured age, as
// the database owner, hardened like the backup (same builders), reaching nothing but the
// primary on 5432, which admits it.
func TestReleaseUnpaidCronJob(t *testing.T) {
	for _, tc := range []struct {
		stack                       string
		overrides                   map[string]string
		schedule, age, maxOpenUnits string
		share                       string
	}{
		{"dev", nil, "*/5 * * * *", "60", "40", "50"},
		{"prod", map[string]string{"releaseUnpaidSchedule": "*/2 * * * *", "unpaidOrderMaxAgeMinutes": "30", "orderMaxOpenUnits": "60",
			"orderMaxProductSharePercent": "25"},
			"*/2 * * * *", "30", "60", "25"},
	} {
		t.Run(tc.stack, func(t *testing.T) {
			r := testkit.MustRun(t, tc.stack, tc.overrides)
			cron := testkit.DecodeAs[batchv1.CronJob](t, r.Object(t, testkit.CronJob, "database-release-unpaid").Inputs)
			assert.Equal(t, tc.schedule, cron.Spec.Schedule)
			assert.Equal(t, batchv1.ForbidConcurrent, cron.Spec.ConcurrencyPolicy, "one run at a time")
			assert.Equal(t, ptr(int64(120)), cron.Spec.StartingDeadlineSeconds)
			job := cron.Spec.JobTemplate.Spec
			assert.Equal(t, ptr(int32(1)), job.BackoffLimit)
			assert.Equal(t, ptr(int64(600)), job.ActiveDeadlineSeconds)
			pod := job.Template.Spec
			assert.Equal(t, corev1.RestartPolicyOnFailure, pod.RestartPolicy)
			assert.Equal(t, "database", pod.ServiceAccountName)
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]
			assert.Equal(t, []string{"sh", "/scripts/release-unpaid.sh"}, c.Command)
			assert.Equal(t, map[string]string{
				"PGHOST": "database-service", "PGPORT": "5432", "PGUSER": "shop_release_unpaid", "PGDATABASE": "ecommerce",
				"PGPASSWORD_FILE": "/etc/database-secrets/release-unpaid-password", "UNPAID_MAX_AGE_MINUTES": tc.age,
			}, testkit.EnvOf(c))
			assert.Equal(t, assets.ReleaseUnpaidScript(), testkit.TypedConfigMap(t, r, "database-config").Data["release-unpaid.sh"])
			sc := c.SecurityContext
			require.NotNil(t, sc)
			assert.Equal(t, ptr(true), sc.ReadOnlyRootFilesystem)
			assert.Equal(t, ptr(false), sc.AllowPrivilegeEscalation)
			assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
			assert.Equal(t, ptr(true), sc.RunAsNonRoot)
			assert.Equal(t, "100m", c.Resources.Limits.Cpu().String())
			assert.Equal(t, "64Mi", c.Resources.Limits.Memory().String())

			policy := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "database-release-unpaid").Inputs)
			assert.True(t, testkit.Selects(policy.Spec.PodSelector.MatchLabels, job.Template.Labels))
			assert.Empty(t, policy.Spec.Ingress)
			require.Len(t, policy.Spec.Egress, 1)
			require.Len(t, policy.Spec.Egress[0].To, 1)
			assert.Equal(t, "database", policy.Spec.Egress[0].To[0].PodSelector.MatchLabels["app.kubernetes.io/component"])
			require.Len(t, policy.Spec.Egress[0].Ports, 1)
			assert.Equal(t, 5432, policy.Spec.Egress[0].Ports[0].Port.IntValue())
			database := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "database").Inputs)
			admitted := false
			for _, peer := range database.Spec.Ingress[0].From {
				admitted = admitted || (peer.PodSelector != nil && testkit.Selects(peer.PodSelector.MatchLabels, job.Template.Labels))
			}
			assert.True(t, admitted, "the primary admits the job's pods")

			// The cap on a customer's unpaid units reaches the database through the
			// credentials Job, which runs again when it changes.
			creds := testkit.DecodeAs[batchv1.Job](t, r.Object(t, testkit.Job, "database-credentials").Inputs)
			assert.Equal(t, tc.maxOpenUnits, testkit.EnvOf(creds.Spec.Template.Spec.Containers[0])["ORDER_MAX_OPEN_UNITS"])
			assert.Equal(t, tc.maxOpenUnits, creds.Spec.Template.Annotations["settings/order-max-open-units"])
			// So does each customer's share of a product (issue 27, finding 5).
			assert.Equal(t, tc.share, testkit.EnvOf(creds.Spec.Template.Spec.Containers[0])["ORDER_MAX_PRODUCT_SHARE_PERCENT"])
			assert.Equal(t, tc.share, creds.Spec.Template.Annotations["settings/order-max-product-share-percent"])
		})
	}
}
