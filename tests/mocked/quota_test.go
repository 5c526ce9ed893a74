package mocked

import (
	"testing"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"ecommerce-platform/tests/testkit"
)

// peak is what the namespace must admit at once, in ResourceQuota's own resource names.
type peak map[corev1.ResourceName]*resource.Quantity

func (p peak) add(name corev1.ResourceName, q resource.Quantity, times int) {
	if p[name] == nil {
		p[name] = resource.NewQuantity(0, q.Format)
	}
	for range times {
		p[name].Add(q)
	}
}

// podRequirements is one pod's requests and limits as the scheduler counts them: the app
// containers plus the native sidecars, or the largest init container (plus the sidecars
// started before it), whichever is larger.
func podRequirements(spec corev1.PodSpec) (requests, limits corev1.ResourceList) {
	requests, limits = corev1.ResourceList{}, corev1.ResourceList{}
	for _, pick := range []struct {
		out corev1.ResourceList
		of  func(corev1.Container) corev1.ResourceList
	}{
		{requests, func(c corev1.Container) corev1.ResourceList { return c.Resources.Requests }},
		{limits, func(c corev1.Container) corev1.ResourceList { return c.Resources.Limits }},
	} {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			running, sidecars, initPeak := resource.Quantity{}, resource.Quantity{}, resource.Quantity{}
			for _, c := range spec.InitContainers {
				q := pick.of(c)[name]
				if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
					sidecars.Add(q)
					continue
				}
				during := sidecars.DeepCopy()
				during.Add(q)
				if during.Cmp(initPeak) > 0 {
					initPeak = during
				}
			}
			running.Add(sidecars)
			for _, c := range spec.Containers {
				running.Add(pick.of(c)[name])
			}
			if initPeak.Cmp(running) > 0 {
				running = initPeak
			}
			pick.out[name] = running
		}
	}
	return requests, limits
}

// namespacePeak sums every workload at its maximum: HPA max (else replicas) plus one surge pod
// per Deployment, StatefulSet replicas, one pod per Job and CronJob; and every claim.
func namespacePeak(t *testing.T, r testkit.Run) peak {
	hpaMax := map[string]int{}
	for _, h := range r.OfType(testkit.HorizontalPodAutoscaler) {
		hpa := testkit.DecodeAs[autoscalingv2.HorizontalPodAutoscaler](t, h.Inputs)
		hpaMax[hpa.Spec.ScaleTargetRef.Name] = int(hpa.Spec.MaxReplicas)
	}
	p := peak{}
	for _, w := range r.Workloads() {
		pods := 1
		switch w.Type {
		case testkit.Deployment:
			d := testkit.DecodeAs[appsv1.Deployment](t, w.Inputs)
			if d.Spec.Replicas != nil { // unset when the HPA owns the count
				pods = int(*d.Spec.Replicas)
			}
			if max, ok := hpaMax[d.Name]; ok {
				pods = max
			}
			pods++ // the surge pod of a rolling update
		case testkit.StatefulSet:
			s := testkit.DecodeAs[appsv1.StatefulSet](t, w.Inputs)
			pods = int(*s.Spec.Replicas)
			for _, claim := range s.Spec.VolumeClaimTemplates {
				p.add(corev1.ResourceRequestsStorage, claim.Spec.Resources.Requests[corev1.ResourceStorage], pods)
			}
		}
		requests, limits := podRequirements(testkit.TypedPod(t, w).Spec)
		p.add(corev1.ResourceRequestsCPU, requests[corev1.ResourceCPU], pods)
		p.add(corev1.ResourceRequestsMemory, requests[corev1.ResourceMemory], pods)
		p.add(corev1.ResourceLimitsCPU, limits[corev1.ResourceCPU], pods)
		p.add(corev1.ResourceLimitsMemory, limits[corev1.ResourceMemory], pods)
		p.add(corev1.ResourcePods, *resource.NewQuantity(1, resource.DecimalSI), pods)
	}
	for _, c := range r.OfType(testkit.PersistentVolumeClaim) {
		claim := testkit.DecodeAs[corev1.PersistentVolumeClaim](t, c.Inputs)
		p.add(corev1.ResourceRequestsStorage, claim.Spec.Resources.Requests[corev1.ResourceStorage], 1)
	}
	return p
}

// The namespace's ResourceQuota admits every workload at its maximum at once: the HPA at its
// max, a rollout's surge pod per Deployment, every replica, Job and CronJob pod, every claim.
// Otherwise the autoscaler stops short of its maximum and a rollout at peak is refused.
func TestQuotaAdmitsThePeak(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, nil)
			quota := testkit.DecodeAs[corev1.ResourceQuota](t, r.OfType("kubernetes:core/v1:ResourceQuota")[0].Inputs)
			need := namespacePeak(t, r)
			for name, hard := range quota.Spec.Hard {
				want := need[name]
				if want == nil {
					continue
				}
				assert.LessOrEqualf(t, want.Cmp(hard), 0, "%s: the peak needs %s, the quota admits %s", name, want.String(), hard.String())
			}
			for _, name := range []corev1.ResourceName{corev1.ResourceRequestsCPU, corev1.ResourceLimitsCPU, corev1.ResourceRequestsMemory,
				corev1.ResourceLimitsMemory, corev1.ResourcePods, corev1.ResourceRequestsStorage} {
				hard, ok := quota.Spec.Hard[name]
				assert.Truef(t, ok, "the quota bounds %s", name)
				t.Logf("quota %s %s: peak %s of %s", stack, name, need[name], hard.String())
			}
		})
	}
}
