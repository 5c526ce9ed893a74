package mocked

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"ecommerce-platform/tests/testkit"
)

// In prod every long-running workload keeps its own pods apart: one node (or one zone, where
// nodes carry zone labels) never holds every replica of the backend, a frontend color or the
// database members. The selector must match the pod's own labels, or the rule keeps nothing
// apart; dev (one node) asks for nothing.
func TestProdSpreadsEveryServingWorkloadOverNodesAndZones(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		r := testkit.MustRun(t, stack, nil)
		served := 0
		for _, w := range r.Workloads() {
			if w.Type == testkit.CronJob || w.Type == testkit.Job {
				continue
			}
			served++
			pod := testkit.TypedPod(t, w)
			if stack == "dev" {
				assert.Emptyf(t, pod.Spec.TopologySpreadConstraints, "%s spreads in dev", w.K8sName())
				assert.Nilf(t, pod.Spec.Affinity, "%s has affinity in dev", w.K8sName())
				continue
			}
			own := labels.Set(pod.Labels)
			var keys []string
			for _, c := range pod.Spec.TopologySpreadConstraints {
				keys = append(keys, c.TopologyKey)
				assert.Equalf(t, int32(1), c.MaxSkew, "%s max skew on %s", w.K8sName(), c.TopologyKey)
				assert.Equalf(t, corev1.ScheduleAnyway, c.WhenUnsatisfiable, "%s on %s", w.K8sName(), c.TopologyKey)
				assert.Truef(t, selects(t, c.LabelSelector, own), "%s's spread on %s does not select its own pods", w.K8sName(), c.TopologyKey)
			}
			assert.Equalf(t, []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, keys, "spread domains of %s", w.K8sName())
			require.NotNilf(t, pod.Spec.Affinity, "%s has no anti-affinity", w.K8sName())
			require.NotNilf(t, pod.Spec.Affinity.PodAntiAffinity, "%s has no anti-affinity", w.K8sName())
			terms := pod.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
			require.Lenf(t, terms, 1, "%s anti-affinity terms", w.K8sName())
			assert.Equal(t, "kubernetes.io/hostname", terms[0].PodAffinityTerm.TopologyKey)
			assert.Truef(t, selects(t, terms[0].PodAffinityTerm.LabelSelector, own), "%s's anti-affinity does not select its own pods", w.K8sName())
		}
		assert.Positivef(t, served, "%s has no long-running workloads", stack)
	}
}

// selects reports whether a label selector matches a pod's labels.
func selects(t *testing.T, selector *metav1.LabelSelector, pod labels.Set) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(selector)
	require.NoError(t, err)
	return !s.Empty() && s.Matches(pod)
}
