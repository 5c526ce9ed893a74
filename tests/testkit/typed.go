package testkit

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DecodeAs reads recorded inputs as a Kubernetes API type, refusing any field the type does
// not have, so a typo in the program fails here instead of being dropped by the API server.
func DecodeAs[T any](t testing.TB, inputs map[string]any) T {
	t.Helper()
	js, err := json.Marshal(inputs)
	require.NoError(t, err)
	var out T
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out), "decode %T", out)
	return out
}

// TypedPod is the pod template of a recorded workload (Deployment, StatefulSet or CronJob).
func TypedPod(t testing.TB, w Recorded) corev1.PodTemplateSpec {
	t.Helper()
	switch w.Type {
	case Deployment:
		return DecodeAs[appsv1.Deployment](t, w.Inputs).Spec.Template
	case StatefulSet:
		return DecodeAs[appsv1.StatefulSet](t, w.Inputs).Spec.Template
	case CronJob:
		return DecodeAs[batchv1.CronJob](t, w.Inputs).Spec.JobTemplate.Spec.Template
	case Job:
		return DecodeAs[batchv1.Job](t, w.Inputs).Spec.Template
	}
	require.FailNowf(t, "not a workload", "%s %s", w.Type, w.K8sName())
	return corev1.PodTemplateSpec{}
}

// TypedContainers are a pod's init containers, then its containers.
func TypedContainers(pod corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container(nil), pod.InitContainers...), pod.Containers...)
}

// TypedContainer is the container (or init container) of that name in a pod.
func TypedContainer(t testing.TB, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range TypedContainers(pod) {
		if c.Name == name {
			return c
		}
	}
	require.FailNowf(t, "no such container", "%s", name)
	return corev1.Container{}
}

// EnvOf maps a container's environment to its literal values; a value from a Secret, a
// ConfigMap or the downward API reads "<ref>".
func EnvOf(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
		if e.ValueFrom != nil {
			out[e.Name] = "<ref>"
		}
	}
	return out
}

// ObjectMeta is a recorded object's metadata, strictly decoded (the rest of the object is
// not read).
func ObjectMeta(t testing.TB, r Recorded) metav1.ObjectMeta {
	t.Helper()
	meta, _ := r.Inputs["metadata"].(map[string]any)
	return DecodeAs[metav1.ObjectMeta](t, meta)
}

// TypedConfigMap reads a recorded ConfigMap by its Kubernetes name.
func TypedConfigMap(t testing.TB, r Run, name string) corev1.ConfigMap {
	return DecodeAs[corev1.ConfigMap](t, r.Object(t, ConfigMap, name).Inputs)
}

// TypedSecret reads a recorded Secret by its Kubernetes name, stringData included.
func TypedSecret(t testing.TB, r Run, name string) corev1.Secret {
	return DecodeAs[corev1.Secret](t, r.Object(t, Secret, name).Inputs)
}

// TypedService reads a recorded Service by its Kubernetes name.
func TypedService(t testing.TB, r Run, name string) corev1.Service {
	return DecodeAs[corev1.Service](t, r.Object(t, Service, name).Inputs)
}
