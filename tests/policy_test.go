package tests

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The policy suite walks every workload the program registers, in every stack, and holds it
// to the platform's security rules. A new tier passes it unchanged or the build fails.
func TestPolicySuite(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			r := mustRun(t, stack, nil)
			workloads := r.workloads()
			// frontend-blue, frontend-green, backend, database, database-backup,
			// database-credentials, frontend-promotion-check, and in prod database-replica.
			want := map[string]int{"dev": 7, "prod": 8}[stack]
			require.Len(t, workloads, want)
			for _, w := range workloads {
				t.Run(w.K8sName(), func(t *testing.T) { checkWorkload(t, r, w) })
			}
			checkNetworkPolicies(t, r)
			checkServiceAccounts(t, r)
			assert.Empty(t, r.ofType("kubernetes:rbac.authorization.k8s.io/v1:Role"), "no tier talks to the Kubernetes API")
			assert.Empty(t, r.ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"))
			assert.Empty(t, r.ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"))
		})
	}
}

func checkWorkload(t *testing.T, r run, w recorded) {
	tmpl := podTemplate(w)
	require.NotNil(t, tmpl)
	spec := dig(tmpl, "spec").(map[string]any)

	pod := dig(spec, "securityContext").(map[string]any)
	assert.Equal(t, true, pod["runAsNonRoot"], "pod runAsNonRoot")
	assert.Equal(t, "RuntimeDefault", dig(pod, "seccompProfile", "type"), "pod seccomp")
	assert.Equal(t, 1000, number(pod["fsGroup"]), "pod fsGroup")
	assert.Equal(t, false, spec["automountServiceAccountToken"], "no service account token")
	sa, _ := spec["serviceAccountName"].(string)
	assert.NotEmpty(t, sa, "a ServiceAccount of its own")
	assert.NotEqual(t, "default", sa)
	assert.Nil(t, spec["hostNetwork"])
	assert.Nil(t, spec["hostPID"])

	longRunning := w.Type != tCronJob && w.Type != tJob
	for _, c := range containersOf(tmpl) {
		name := c.Name()
		sc, _ := c.Spec["securityContext"].(map[string]any)
		require.NotNilf(t, sc, "%s: security context", name)
		assert.Equalf(t, true, sc["runAsNonRoot"], "%s runAsNonRoot", name)
		assert.Positivef(t, number(sc["runAsUser"]), "%s runs as a numeric non-root uid", name)
		assert.Equalf(t, true, sc["readOnlyRootFilesystem"], "%s readOnlyRootFilesystem", name)
		assert.Equalf(t, false, sc["allowPrivilegeEscalation"], "%s allowPrivilegeEscalation", name)
		assert.Equalf(t, []any{"ALL"}, dig(sc, "capabilities", "drop"), "%s drops all capabilities", name)
		assert.Nilf(t, dig(sc, "capabilities", "add"), "%s adds no capability", name)
		assert.Equalf(t, "RuntimeDefault", dig(sc, "seccompProfile", "type"), "%s seccomp", name)
		assert.NotEqualf(t, true, sc["privileged"], "%s privileged", name)

		assert.Equalf(t, "Always", c.Spec["imagePullPolicy"], "%s pulls its pinned tag on every start", name)
		for _, kind := range []string{"requests", "limits"} {
			for _, res := range []string{"cpu", "memory", "ephemeral-storage"} {
				q, _ := dig(c.Spec, "resources", kind, res).(string)
				parsed, err := resource.ParseQuantity(q)
				if assert.NoErrorf(t, err, "%s %s.%s %q", name, kind, res, q) {
					assert.Positivef(t, parsed.Sign(), "%s %s.%s", name, kind, res)
				}
			}
		}

		image, _ := c.Spec["image"].(string)
		slash, colon := strings.LastIndex(image, "/"), strings.LastIndex(image, ":")
		if assert.Greaterf(t, colon, slash, "%s image %q has a tag", name, image) {
			assert.NotEqualf(t, "latest", image[colon+1:], "%s image %q pinned", name, image)
		}

		if longRunning && !c.Init {
			assert.NotNilf(t, c.Spec["readinessProbe"], "%s readiness probe", name)
			assert.NotNilf(t, c.Spec["livenessProbe"], "%s liveness probe", name)
			assert.NotNilf(t, c.Spec["startupProbe"], "%s startup probe", name)
			assert.NotEqualf(t, c.Spec["readinessProbe"], c.Spec["livenessProbe"],
				"%s: liveness must not fail for what readiness checks (a dependency)", name)
		}
		for _, e := range list(c.Spec["env"]) {
			envName := dig(e, "name").(string)
			if strings.Contains(envName, "PASSWORD") || strings.Contains(envName, "SECRET") {
				if strings.HasSuffix(envName, "_FILE") {
					continue
				}
				v, _ := dig(e, "value").(string)
				assert.Truef(t, v == "" || strings.HasPrefix(v, "$("), "%s env %s must come from a Secret, not a literal", name, envName)
			}
		}
	}

	// Every writable path is an emptyDir or a claim: count the mounts that are not read-only.
	volumes := map[string]map[string]any{}
	for _, v := range list(spec["volumes"]) {
		m := v.(map[string]any)
		volumes[m["name"].(string)] = m
	}
	for _, claim := range list(dig(w.Inputs, "spec", "volumeClaimTemplates")) {
		volumes[dig(claim, "metadata", "name").(string)] = map[string]any{"persistentVolumeClaim": true}
	}
	for _, c := range containersOf(tmpl) {
		for _, m := range list(c.Spec["volumeMounts"]) {
			vm := m.(map[string]any)
			vol := volumes[vm["name"].(string)]
			require.NotNilf(t, vol, "%s mounts unknown volume %s", c.Name(), vm["name"])
			if vm["readOnly"] == true {
				continue
			}
			writable := vol["emptyDir"] != nil || vol["persistentVolumeClaim"] != nil
			assert.Truef(t, writable, "%s mounts %s writable but it is not an emptyDir or a claim", c.Name(), vm["name"])
		}
	}
	if longRunning {
		assert.Positivef(t, number(spec["terminationGracePeriodSeconds"]), "graceful shutdown period")
	} else if w.Type == tCronJob {
		assert.Positivef(t, number(dig(w.Inputs, "spec", "startingDeadlineSeconds")), "a missed run has a deadline")
	}
}

// Default deny in both directions for every pod, DNS egress, and every workload's pods
// covered by a policy of their own.
func checkNetworkPolicies(t *testing.T, r run) {
	policies := r.ofType(tNetPol)
	deny := r.object(t, tNetPol, "default-deny-all")
	assert.Equal(t, map[string]any{}, dig(deny.Inputs, "spec", "podSelector"))
	assert.Equal(t, []any{"Ingress", "Egress"}, dig(deny.Inputs, "spec", "policyTypes"))
	assert.Nil(t, dig(deny.Inputs, "spec", "ingress"))
	assert.Nil(t, dig(deny.Inputs, "spec", "egress"))
	dns := r.object(t, tNetPol, "allow-dns-egress")
	assert.ElementsMatch(t, []any{
		map[string]any{"protocol": "UDP", "port": float64(53)},
		map[string]any{"protocol": "TCP", "port": float64(53)},
	}, dig(dns.Inputs, "spec", "egress", 0, "ports"))

	for _, w := range r.workloads() {
		podLabels := stringMap(dig(podTemplate(w), "metadata", "labels"))
		covered := 0
		for _, p := range policies {
			sel := stringMap(dig(p.Inputs, "spec", "podSelector", "matchLabels"))
			if selects(sel, podLabels) {
				covered++
			}
		}
		assert.Positivef(t, covered, "%s pods have no NetworkPolicy of their own", w.K8sName())
	}
}

func checkServiceAccounts(t *testing.T, r run) {
	accounts := r.ofType(tSA)
	assert.ElementsMatch(t, []string{"backend", "database", "frontend", "frontend-promotion-check"}, r.names(tSA))
	for _, sa := range accounts {
		assert.Equalf(t, false, sa.Inputs["automountServiceAccountToken"], "ServiceAccount %s", sa.K8sName())
	}
}
