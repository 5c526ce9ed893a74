package mocked

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"ecommerce-platform/tests/testkit"
)

// The policy suite walks every workload the program registers, in every stack, and holds it
// to the platform's security rules. A new tier passes it unchanged or the build fails.
func TestPolicySuite(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := testkit.MustRun(t, stack, nil)
			workloads := r.Workloads()
			// frontend-blue, frontend-green, backend, database, database-backup,
			// database-release-unpaid, database-migrate, database-credentials,
			// frontend-promotion-check, database-archiver (prod's replicas are members of database).
			want := map[string]int{"dev": 10, "prod": 10}[stack]
			require.Len(t, workloads, want)
			for _, w := range workloads {
				t.Run(w.K8sName(), func(t *testing.T) { checkWorkload(t, r, w) })
			}
			checkNetworkPolicies(t, r)
			checkServiceAccounts(t, r, stack == "prod")
			// Only Patroni (prod) talks to the Kubernetes API: TestFailoverRBACIsExactlyWhatPatroniCalls.
			assert.Equal(t, map[string]int{"dev": 0, "prod": 1}[stack], len(r.OfType(testkit.Role)))
			assert.Empty(t, r.OfType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"))
			assert.Empty(t, r.OfType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"))
		})
	}
}

func checkWorkload(t *testing.T, r testkit.Run, w testkit.Recorded) {
	spec := testkit.TypedPod(t, w).Spec
	pod := spec.SecurityContext
	require.NotNil(t, pod, "pod security context")
	assert.Equal(t, ptr(true), pod.RunAsNonRoot, "pod runAsNonRoot")
	require.NotNil(t, pod.SeccompProfile)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SeccompProfile.Type, "pod seccomp")
	assert.Equal(t, ptr(int64(1000)), pod.FSGroup, "pod fsGroup")
	// Patroni's members hold the one token of the platform, for their leader lock.
	assert.Equal(t, ptr(w.K8sName() == "database" && len(r.OfType(testkit.Role)) == 1), spec.AutomountServiceAccountToken, "service account token")
	assert.NotEmpty(t, spec.ServiceAccountName, "a ServiceAccount of its own")
	assert.NotEqual(t, "default", spec.ServiceAccountName)
	assert.False(t, spec.HostNetwork)
	assert.False(t, spec.HostPID)

	longRunning := w.Type != testkit.CronJob && w.Type != testkit.Job
	for i, c := range testkit.TypedContainers(spec) {
		// An init container that keeps running (restartPolicy Always) is a native sidecar.
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		init := i < len(spec.InitContainers) && !sidecar
		checkContainer(t, c, longRunning && !init)
		if init {
			assert.Truef(t, c.ReadinessProbe == nil && c.LivenessProbe == nil && c.StartupProbe == nil,
				"%s: the API server refuses probes on an init container that runs to completion", c.Name)
		}
	}

	// Every writable path is an emptyDir or a claim: count the mounts that are not read-only.
	writable := map[string]bool{}
	for _, v := range spec.Volumes {
		writable[v.Name] = v.EmptyDir != nil || v.PersistentVolumeClaim != nil
	}
	var claims []string
	if w.Type == testkit.StatefulSet {
		for _, claim := range testkit.DecodeAs[appsv1.StatefulSet](t, w.Inputs).Spec.VolumeClaimTemplates {
			claims = append(claims, claim.Name)
			writable[claim.Name] = true
		}
	}
	for _, c := range testkit.TypedContainers(spec) {
		for _, m := range c.VolumeMounts {
			known := false
			for _, v := range spec.Volumes {
				known = known || v.Name == m.Name
			}
			known = known || slices.Contains(claims, m.Name)
			require.Truef(t, known, "%s mounts unknown volume %s", c.Name, m.Name)
			if !m.ReadOnly {
				assert.Truef(t, writable[m.Name], "%s mounts %s writable but it is not an emptyDir or a claim", c.Name, m.Name)
			}
		}
	}
	if longRunning {
		require.NotNil(t, spec.TerminationGracePeriodSeconds)
		assert.Positivef(t, *spec.TerminationGracePeriodSeconds, "graceful shutdown period")
	} else if w.Type == testkit.CronJob {
		deadline := testkit.DecodeAs[batchv1.CronJob](t, w.Inputs).Spec.StartingDeadlineSeconds
		require.NotNil(t, deadline, "a missed run has a deadline")
		assert.Positive(t, *deadline, "a missed run has a deadline")
	}
}

// checkContainer holds one container to the hardening, sizing, image and probe rules.
func checkContainer(t *testing.T, c corev1.Container, longRunning bool) {
	name, sc := c.Name, c.SecurityContext
	require.NotNilf(t, sc, "%s: security context", name)
	assert.Equalf(t, ptr(true), sc.RunAsNonRoot, "%s runAsNonRoot", name)
	require.NotNilf(t, sc.RunAsUser, "%s runs as a numeric uid", name)
	assert.Positivef(t, *sc.RunAsUser, "%s runs as a numeric non-root uid", name)
	assert.Equalf(t, ptr(true), sc.ReadOnlyRootFilesystem, "%s readOnlyRootFilesystem", name)
	assert.Equalf(t, ptr(false), sc.AllowPrivilegeEscalation, "%s allowPrivilegeEscalation", name)
	require.NotNilf(t, sc.Capabilities, "%s capabilities", name)
	assert.Equalf(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s drops all capabilities", name)
	assert.Emptyf(t, sc.Capabilities.Add, "%s adds no capability", name)
	require.NotNilf(t, sc.SeccompProfile, "%s seccomp", name)
	assert.Equalf(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type, "%s seccomp", name)
	assert.NotEqualf(t, ptr(true), sc.Privileged, "%s privileged", name)

	assert.Equalf(t, corev1.PullAlways, c.ImagePullPolicy, "%s pulls its pinned tag on every start", name)
	for kind, list := range map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
			q, ok := list[res]
			if assert.Truef(t, ok, "%s %s.%s", name, kind, res) {
				assert.Positivef(t, q.Sign(), "%s %s.%s", name, kind, res)
			}
		}
	}

	slash, colon := strings.LastIndex(c.Image, "/"), strings.LastIndex(c.Image, ":")
	if assert.Greaterf(t, colon, slash, "%s image %q has a tag", name, c.Image) {
		assert.NotEqualf(t, "latest", c.Image[colon+1:], "%s image %q pinned", name, c.Image)
	}

	if longRunning {
		require.NotNilf(t, c.ReadinessProbe, "%s readiness probe", name)
		require.NotNilf(t, c.LivenessProbe, "%s liveness probe", name)
		assert.NotNilf(t, c.StartupProbe, "%s startup probe", name)
		assert.NotEqualf(t, c.ReadinessProbe, c.LivenessProbe,
			"%s: liveness must not fail for what readiness checks (a dependency)", name)
	}
	for _, e := range c.Env {
		if (strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "SECRET")) && !strings.HasSuffix(e.Name, "_FILE") {
			assert.Truef(t, e.Value == "" || strings.HasPrefix(e.Value, "$("), "%s env %s must come from a Secret, not a literal", name, e.Name)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Default deny in both directions for every pod, DNS egress, and every workload's pods
// covered by a policy of their own.
func checkNetworkPolicies(t *testing.T, r testkit.Run) {
	policies := r.OfType(testkit.NetworkPolicy)
	deny := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "default-deny-all").Inputs)
	assert.Empty(t, deny.Spec.PodSelector.MatchLabels, "every pod")
	assert.Empty(t, deny.Spec.PodSelector.MatchExpressions, "every pod")
	assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, deny.Spec.PolicyTypes)
	assert.Nil(t, deny.Spec.Ingress)
	assert.Nil(t, deny.Spec.Egress)
	dns := testkit.DecodeAs[networkingv1.NetworkPolicy](t, r.Object(t, testkit.NetworkPolicy, "allow-dns-egress").Inputs)
	require.Len(t, dns.Spec.Egress, 1)
	var dnsPorts []string
	for _, p := range dns.Spec.Egress[0].Ports {
		dnsPorts = append(dnsPorts, string(*p.Protocol)+"/"+p.Port.String())
	}
	assert.ElementsMatch(t, []string{"UDP/53", "TCP/53"}, dnsPorts)

	for _, w := range r.Workloads() {
		podLabels := testkit.TypedPod(t, w).Labels
		covered := 0
		for _, p := range policies {
			sel := testkit.DecodeAs[networkingv1.NetworkPolicy](t, p.Inputs).Spec.PodSelector.MatchLabels
			if testkit.Selects(sel, podLabels) {
				covered++
			}
		}
		assert.Positivef(t, covered, "%s pods have no NetworkPolicy of their own", w.K8sName())
	}
}

func checkServiceAccounts(t *testing.T, r testkit.Run, patroni bool) {
	accounts := r.OfType(testkit.ServiceAccount)
	want := []string{"backend", "database", "frontend", "frontend-promotion-check"}
	if patroni {
		want = append(want, "database-members")
	}
	assert.ElementsMatch(t, want, r.Names(testkit.ServiceAccount))
	for _, sa := range accounts {
		automount := testkit.DecodeAs[corev1.ServiceAccount](t, sa.Inputs).AutomountServiceAccountToken
		assert.Equalf(t, ptr(false), automount, "ServiceAccount %s mounts no token", sa.K8sName())
	}
}
