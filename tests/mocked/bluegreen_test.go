package mocked

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"ecommerce-platform/tests/testkit"
)

// changed lists the Pulumi names of resources whose inputs differ between two runs, plus
// any resource only one run has: what `pulumi up` would touch.
func changed(a, b testkit.Run) []string {
	index := func(r testkit.Run) map[string]testkit.Recorded {
		m := map[string]testkit.Recorded{}
		for _, res := range r.Resources {
			m[res.Type+"::"+res.Name] = res
		}
		return m
	}
	ia, ib := index(a), index(b)
	var out []string
	for k, ra := range ia {
		rb, ok := ib[k]
		if !ok || !reflect.DeepEqual(ra.Inputs, rb.Inputs) {
			out = append(out, ra.Name)
		}
	}
	for k, rb := range ib {
		if _, ok := ia[k]; !ok {
			out = append(out, rb.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Switching colors changes the production-facing Services' selectors and the promotion check
// (its Job runs again for the new color, and its policy now reaches that color) and nothing
// else: no Deployment, ConfigMap or preview Service moves, and nothing is created or deleted.
func TestColorSwitchChangesOnlyProductionSelectors(t *testing.T) {
	cases := []struct {
		stack string
		want  []string
	}{
		{"prod", []string{"frontend-internal", "frontend-service"}},
		{"dev", []string{"frontend-internal", "frontend-nodeport", "frontend-service"}},
	}
	check := []string{"frontend-promotion-job", "frontend-promotion-netpol"}
	for _, tc := range cases {
		t.Run(tc.stack, func(t *testing.T) {
			blue := testkit.MustRun(t, tc.stack, map[string]string{"activeColor": "blue"})
			green := testkit.MustRun(t, tc.stack, map[string]string{"activeColor": "green"})
			want := append(append([]string(nil), tc.want...), check...)
			sort.Strings(want)
			require.Equal(t, want, changed(blue, green))
			job := testkit.DecodeAs[batchv1.Job](t, green.Object(t, testkit.Job, "frontend-promotion-check").Inputs)
			assert.Equal(t, "green", job.Spec.Template.Annotations["ecommerce-platform/expected-color"])
			for _, name := range tc.want {
				before := serviceByPulumiName(t, blue, name)
				after := serviceByPulumiName(t, green, name)
				typedBefore := testkit.DecodeAs[corev1.Service](t, before.Inputs)
				typedAfter := testkit.DecodeAs[corev1.Service](t, after.Inputs)
				assert.Equal(t, "blue", typedBefore.Spec.Selector["ecommerce-platform/color"])
				assert.Equal(t, "green", typedAfter.Spec.Selector["ecommerce-platform/color"])
				// Only the selector: compare everything else.
				typedBefore.Spec.Selector, typedAfter.Spec.Selector = nil, nil
				assert.Equal(t, typedBefore, typedAfter, "%s changes only its selector", name)
				assert.Truef(t, dependsOn(after, "kubernetes:apps/v1:Deployment::frontend-green-deployment"), "%s waits for the green Deployment", name)
				assert.Truef(t, dependsOn(after, "kubernetes:batch/v1:Job::frontend-promotion-job"), "%s waits for the promotion check", name)
				assert.Falsef(t, dependsOn(after, "kubernetes:apps/v1:Deployment::frontend-blue-deployment"), "%s does not wait for the idle color", name)
			}
		})
	}
}

// A new release on the idle color rolls only that color's Deployment.
func TestReleaseOnIdleColorChangesOnlyItsDeployment(t *testing.T) {
	before := testkit.MustRun(t, "prod", nil)
	after := testkit.MustRun(t, "prod", map[string]string{
		"greenImage":   "nginxinc/nginx-unprivileged:1.27.5-alpine",
		"greenVersion": "1.1.0",
	})
	assert.Equal(t, []string{"frontend-green-deployment"}, changed(before, after))
	d := after.Object(t, testkit.Deployment, "frontend-green")
	pod := testkit.TypedPod(t, d)
	assert.Equal(t, "nginxinc/nginx-unprivileged:1.27.5-alpine", pod.Spec.Containers[0].Image)
	assert.Equal(t, "1.1.0", pod.Labels["app.kubernetes.io/version"])
}

// Scaling the idle color down is a normal change; the idle color keeps its Deployment.
func TestIdleColorCanBeScaledDown(t *testing.T) {
	before := testkit.MustRun(t, "prod", nil)
	after := testkit.MustRun(t, "prod", map[string]string{"greenReplicas": "0"})
	assert.Equal(t, []string{"frontend-green-deployment"}, changed(before, after))
	assert.Equal(t, ptr(int32(0)), testkit.DecodeAs[appsv1.Deployment](t, after.Object(t, testkit.Deployment, "frontend-green").Inputs).Spec.Replicas)
	// Its preview keeps existing with no endpoints, so Pulumi must not wait for any there;
	// production Services wait for the Deployment and the check instead of the endpoint
	// settle, and a LoadBalancer for its address.
	preview := after.Object(t, testkit.Service, "frontend-green-preview")
	assert.Equal(t, "true", testkit.DecodeAs[corev1.Service](t, preview.Inputs).Annotations["pulumi.com/skipAwait"])
	assert.Equal(t, map[string]string{"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"},
		testkit.TypedService(t, after, "frontend-service").Annotations)
	assert.Equal(t, map[string]string{"pulumi.com/skipAwait": "true"},
		testkit.TypedService(t, after, "frontend-internal").Annotations)
}

// A color with no replicas cannot take production traffic.
func TestZeroReplicaColorCannotBeActive(t *testing.T) {
	r := testkit.RunProgram(t, "prod", map[string]string{"activeColor": "green", "greenReplicas": "0"})
	require.Error(t, r.Err)
	assert.Contains(t, r.Err.Error(), `activeColor: "green" has greenReplicas = 0`)
	assert.Empty(t, r.Kubernetes())
}

// A change of configuration text rolls the pods through the checksum annotation, without
// replacing the Deployment (its name and selector stay).
func TestConfigChangeRollsPodsInPlace(t *testing.T) {
	before := testkit.MustRun(t, "prod", nil)
	after := testkit.MustRun(t, "prod", map[string]string{"frontendRateLimit": "50"})
	for _, color := range []string{"blue", "green"} {
		b := before.Object(t, testkit.Deployment, "frontend-"+color)
		a := after.Object(t, testkit.Deployment, "frontend-"+color)
		bSum := testkit.TypedPod(t, b).Annotations["checksum/config"]
		aSum := testkit.TypedPod(t, a).Annotations["checksum/config"]
		assert.Len(t, bSum, 64)
		assert.NotEqual(t, bSum, aSum, "a new nginx.conf must roll %s", color)
		assert.Equal(t, workloadSelector(t, b), workloadSelector(t, a))
	}
	assert.Equal(t, []string{
		"frontend-blue-config", "frontend-blue-deployment", "frontend-green-config", "frontend-green-deployment",
	}, changed(before, after))
}

func serviceByPulumiName(t *testing.T, r testkit.Run, name string) testkit.Recorded {
	t.Helper()
	for _, res := range r.OfType(testkit.Service) {
		if res.Name == name {
			return res
		}
	}
	require.Failf(t, "no service", "%s", name)
	return testkit.Recorded{}
}

// dependsOn reports whether a resource depends on the resource whose URN ends so.
func dependsOn(r testkit.Recorded, urnSuffix string) bool {
	for _, d := range r.Deps {
		if strings.HasSuffix(d, urnSuffix) {
			return true
		}
	}
	return false
}

// Rotating apiDbPassword or jwtSecret changes exactly the two Secrets, the credentials Job
// (its template, so it runs again) and the backend's pod template (so its pods roll), and the
// backend waits for the Job.
func TestCredentialRotationChangesExactlyThese(t *testing.T) {
	for _, key := range []string{"apiDbPassword", "jwtSecret"} {
		t.Run(key, func(t *testing.T) {
			before := testkit.Snapshot(testkit.MustRun(t, "prod", nil))
			after := testkit.MustRun(t, "prod", map[string]string{key: testkit.TestSecrets[key] + "-rotated-0123456789"})
			var diff []string
			for k, v := range testkit.Snapshot(after) {
				if before[k] != v {
					diff = append(diff, k)
				}
			}
			sort.Strings(diff)
			assert.Equal(t, []string{
				"kubernetes:apps/v1:Deployment backend-deployment",
				"kubernetes:batch/v1:Job database-credentials-job",
				"kubernetes:core/v1:Secret backend-secrets",
				"kubernetes:core/v1:Secret database-credentials",
			}, diff)

			job := after.Object(t, testkit.Job, "database-credentials")
			backend := after.Object(t, testkit.Deployment, "backend")
			found := false
			for _, dep := range backend.Deps {
				found = found || strings.HasSuffix(dep, "::"+job.Name)
			}
			assert.True(t, found, "the backend Deployment depends on the credentials Job")
		})
	}
}

// The owner's and the replication passwords go to the database side only: the Secret and the
// credentials Job (which sets the replicator's password, and refuses a changed owner
// password with the procedure); never the backend. Patroni's members read both passwords
// from the Secret by reference, so rotating either rolls no member (Patroni takes a new
// password at its next restart; the credentials Job sets it in the database). The job roles'
// passwords (backup, release-unpaid, monitor) reach the Secret and the credentials Job; the
// CronJobs read theirs at every run, the exporters theirs when they start.
func TestDatabaseSideCredentialChanges(t *testing.T) {
	secretAndJob := []string{"kubernetes:batch/v1:Job database-credentials-job", "kubernetes:core/v1:Secret database-credentials"}
	for key, want := range map[string][]string{
		"dbPassword":              {"kubernetes:batch/v1:Job database-credentials-job", "kubernetes:core/v1:Secret database-credentials"},
		"replicationPassword":     {"kubernetes:batch/v1:Job database-credentials-job", "kubernetes:core/v1:Secret database-credentials"},
		"backupDbPassword":        secretAndJob,
		"releaseUnpaidDbPassword": secretAndJob,
		// The exporters read it when they start: the database pods (prod: Patroni's members) restart.
		"monitorDbPassword": {"kubernetes:apps/v1:StatefulSet database-statefulset",
			"kubernetes:batch/v1:Job database-credentials-job", "kubernetes:core/v1:Secret database-credentials"},
	} {
		t.Run(key, func(t *testing.T) {
			before := testkit.Snapshot(testkit.MustRun(t, "prod", nil))
			after := testkit.Snapshot(testkit.MustRun(t, "prod", map[string]string{key: testkit.TestSecrets[key] + "-rotated-0123456789"}))
			var diff []string
			for k, v := range after {
				if before[k] != v {
					diff = append(diff, k)
				}
			}
			sort.Strings(diff)
			assert.Equal(t, want, diff)
		})
	}
}
