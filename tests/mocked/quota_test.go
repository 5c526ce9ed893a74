package mocked

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"ecommerce-platform/components"
	"ecommerce-platform/tests/testkit"
)

// objects are a run's registered objects as the program's capacity check reads them.
func objects(r testkit.Run) []components.KubeObject {
	out := make([]components.KubeObject, len(r.Resources))
	for i, res := range r.Resources {
		out[i] = components.KubeObject{Type: res.Type, Name: res.Name, Inputs: res.Inputs}
	}
	return out
}

// The namespace's ResourceQuota admits every workload at its maximum at once: the HPA at its
// max, a rollout's surge pod per Deployment, every replica, Job and CronJob pod, every claim.
// Otherwise the autoscaler stops short of its maximum and a rollout at peak is refused. The
// peak is the program's own computation (components.NamespacePeak, which `pulumi up` runs
// before registering anything), over the objects this run registered.
func TestQuotaAdmitsThePeak(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, nil)
			problems, peak, err := components.QuotaShortfalls(objects(r))
			require.NoError(t, err)
			assert.Empty(t, problems)
			quota := testkit.DecodeAs[corev1.ResourceQuota](t, r.OfType("kubernetes:core/v1:ResourceQuota")[0].Inputs)
			for _, name := range []corev1.ResourceName{corev1.ResourceRequestsCPU, corev1.ResourceLimitsCPU, corev1.ResourceRequestsMemory,
				corev1.ResourceLimitsMemory, corev1.ResourcePods, corev1.ResourceRequestsStorage} {
				hard, ok := quota.Spec.Hard[name]
				assert.Truef(t, ok, "the quota bounds %s", name)
				t.Logf("quota %s %s: peak %s of %s", stack, name, peak[name], hard.String())
			}
		})
	}
}

// An independent expectation of prod's peak CPU limits, by hand from the rendered sizes:
// backend 10 (HPA max) + 1 surge pods of envoy 500m + postgrest 500m + pgbouncer 500m = 16.5;
// frontend 2 colors x (3 + 1 surge) pods of log-collector, nginx and exporter (100m + 200m +
// 100m) = 3.2; database and 2 replicas of postgres 1 + exporter 100m = 3.3; the archiver's
// wal-receiver, base-backup, metrics and offsite-sync 100m + 500m + 100m + 100m = 0.8; the
// backup CronJob 500m, the release-unpaid CronJob, the migrate (its containers run one after
// another: 100m), credentials and promotion Jobs 100m each: 24.7 in all.
func TestQuotaPeakOfProd(t *testing.T) {
	peak, err := components.NamespacePeak(objects(testkit.MustRun(t, "prod", nil)))
	require.NoError(t, err)
	assert.Equal(t, 0, peak[corev1.ResourceLimitsCPU].Cmp(resource.MustParse("24700m")), "limits.cpu %s", peak[corev1.ResourceLimitsCPU])
	assert.Equal(t, int64(28), peak[corev1.ResourcePods].Value(), "pods: 11 + 8 + 3 + 1 + 5")
}

// `pulumi up` refuses a stack whose quota cannot reach its own HPA maximum, before anything is
// registered, naming the numbers: here prod with the 16 CPUs of limits it had before.
func TestQuotaRefusesAnUndersizedStack(t *testing.T) {
	r := testkit.RunProgram(t, "prod", map[string]string{"quotaLimitsCpu": "16", "quotaPods": "20"})
	require.Error(t, r.Err)
	assert.Contains(t, r.Err.Error(), "limits.cpu: the peak needs 24700m, quotaLimitsCpu admits 16")
	assert.Contains(t, r.Err.Error(), "pods: the peak needs 28, quotaPods admits 20")
	assert.Empty(t, r.Resources, "nothing is registered")
	t.Logf("refused: %v", r.Err)
}
