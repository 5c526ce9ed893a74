package mocked

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"ecommerce-platform/components"
	"ecommerce-platform/tests/testkit"
)

// The Kubernetes version the README promises is at least what every rendered pod needs:
// preStop sleep hooks need 1.30 (off in 1.29: the API server rejects the Deployment), native
// sidecars 1.29.
func TestMinimumKubernetesCoversEveryFeature(t *testing.T) {
	need, why := 0, ""
	for _, stack := range []string{"dev", "prod"} {
		r := testkit.MustRun(t, stack, nil)
		for _, w := range r.Workloads() {
			spec := testkit.TypedPod(t, w).Spec
			for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil && need < 30 {
					need, why = 30, w.K8sName()+"/"+c.Name+": preStop sleep"
				}
				if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && need < 29 {
					need, why = 29, w.K8sName()+"/"+c.Name+": native sidecar"
				}
			}
		}
	}
	minor, err := strconv.Atoi(strings.TrimPrefix(components.MinimumKubernetes, "1."))
	require.NoError(t, err)
	assert.GreaterOrEqualf(t, minor, need, "MinimumKubernetes %s, but %s needs 1.%d", components.MinimumKubernetes, why, need)
	readme, err := os.ReadFile(testkit.ProjectFile(t, "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "Kubernetes "+components.MinimumKubernetes+" or later")
}

// Envoy runs one worker per CPU of its limit, not one per host thread.
func TestEnvoyWorkersMatchItsCPULimit(t *testing.T) {
	r := testkit.MustRun(t, "prod", nil)
	envoy := testkit.TypedContainer(t, testkit.TypedPod(t, r.Object(t, testkit.Deployment, "backend")).Spec, "envoy")
	limit := envoy.Resources.Limits.Cpu().MilliValue()
	workers := strconv.Itoa(int(max(1, (limit+999)/1000)))
	cmd := strings.Join(envoy.Command, " ")
	assert.Contains(t, cmd, "--concurrency "+workers, "CPU limit %dm", limit)
}
