package tests

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// decodeAs reads recorded inputs as a Kubernetes API type, refusing any field the type does
// not have, so a typo in the program fails here instead of being dropped by the API server.
func decodeAs[T any](t testing.TB, inputs map[string]any) T {
	t.Helper()
	js, err := json.Marshal(inputs)
	require.NoError(t, err)
	var out T
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out), "decode %T", out)
	return out
}

// typedPod is the pod template of a recorded workload (Deployment, StatefulSet or CronJob).
func typedPod(t testing.TB, w recorded) corev1.PodTemplateSpec {
	t.Helper()
	switch w.Type {
	case tDeployment:
		return decodeAs[appsv1.Deployment](t, w.Inputs).Spec.Template
	case tStatefulSet:
		return decodeAs[appsv1.StatefulSet](t, w.Inputs).Spec.Template
	case tCronJob:
		return decodeAs[batchv1.CronJob](t, w.Inputs).Spec.JobTemplate.Spec.Template
	case tJob:
		return decodeAs[batchv1.Job](t, w.Inputs).Spec.Template
	}
	require.FailNowf(t, "not a workload", "%s %s", w.Type, w.K8sName())
	return corev1.PodTemplateSpec{}
}

// typedContainers are a pod's init containers, then its containers.
func typedContainers(pod corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container(nil), pod.InitContainers...), pod.Containers...)
}

// typedContainer is the container (or init container) of that name in a pod.
func typedContainer(t testing.TB, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range typedContainers(pod) {
		if c.Name == name {
			return c
		}
	}
	require.FailNowf(t, "no such container", "%s", name)
	return corev1.Container{}
}

// typedConfigMap and typedSecret read recorded data objects (a Secret's stringData included).
func typedConfigMap(t testing.TB, r run, name string) corev1.ConfigMap {
	return decodeAs[corev1.ConfigMap](t, r.object(t, tConfigMap, name).Inputs)
}

func typedSecret(t testing.TB, r run, name string) corev1.Secret {
	return decodeAs[corev1.Secret](t, r.object(t, tSecret, name).Inputs)
}

func typedService(t testing.TB, r run, name string) corev1.Service {
	return decodeAs[corev1.Service](t, r.object(t, tService, name).Inputs)
}
