//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"ecommerce-platform/components"
	"ecommerce-platform/components/assets"
	"ecommerce-platform/deploy"
	"ecommerce-platform/tests/testkit"
)

// integrationEnv finds the tools and the cluster `make integration` prepared.
func integrationEnv(t *testing.T) (tools, kubeconfig string) {
	tools, kubeconfig = os.Getenv("ECOMMERCE_TOOLS"), os.Getenv("ECOMMERCE_KUBECONFIG")
	if tools == "" || kubeconfig == "" {
		msg := "ECOMMERCE_TOOLS and ECOMMERCE_KUBECONFIG are not set: run `make integration`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tools, kubeconfig
}

// copyProject copies the project's own Pulumi.yaml and stack files into a temporary folder,
// so config changes made by the tests (activeColor, generated secrets) stay out of the repo.
// Secrets a user's `make up` stored in a stack file are encrypted with that user's passphrase:
// the copies leave them (and the encryption salt) out, and the tests generate their own.
func copyProject(t *testing.T) string {
	dir := t.TempDir()
	for _, name := range []string{"Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"} {
		b, err := os.ReadFile(testkit.ProjectFile(t, name))
		require.NoError(t, err)
		if name != "Pulumi.yaml" {
			b = withoutSecrets(t, b)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	return dir
}

// withoutSecrets is a stack file without its encryption salt and `secure:` values.
func withoutSecrets(t *testing.T, stackFile []byte) []byte {
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(stackFile, &doc))
	delete(doc, "encryptionsalt")
	cfg, _ := doc["config"].(map[string]any)
	for key, value := range cfg {
		if m, ok := value.(map[string]any); ok && m["secure"] != nil {
			delete(cfg, key)
		}
	}
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	return out
}

// timing records a measured duration for the closing report.
func timing(t *testing.T, what string, since time.Time) {
	t.Logf("integration timing: %-28s %6.1fs", what, time.Since(since).Seconds())
}

// TestIntegration drives the real Pulumi engine and Kubernetes provider, through the same
// driver `make up` uses, against a real local control plane. The steps build on each other.
func TestIntegration(t *testing.T) {
	it := newIntegration(t)
	t.Run("bad config fails and creates nothing", it.badConfig)
	t.Run("dev up", it.devUp)
	t.Run("second up changes nothing", it.noopUp)
	t.Run("switch to green: the check runs, then only the production selectors move", it.switchToGreen)
	t.Run("switch back restores blue", it.switchBack)
	t.Run("failing check: up fails and traffic stays on blue; fixed, the next up passes", it.failingCheck)
	t.Run("a release on the idle color updates only its Deployment", it.idleRelease)
	t.Run("an upgrade reaches only the idle color; the migration Job runs again before the backend rolls", it.upgradeReachesOnlyIdle)
	t.Run("destroy leaves nothing behind", it.destroyDev)
	t.Run("prod up and protected destroy", it.prodUp)
	t.Run("a recovery stack's database bootstraps from the archive", it.recoveryUp)
}

// devNS is the dev stack's namespace.
const devNS = "ecommerce-dev"

// integration is one run of the integration steps: the real engine and provider over a copy
// of the project, the cluster's API, and the dev stack the steps share.
type integration struct {
	ctx        context.Context
	k          *kube
	tools      string
	kubeconfig string
	project    string
	progress   *bytes.Buffer
	dev        *deploy.Stack
	traffic    deploy.Traffic
}

func newIntegration(t *testing.T) *integration {
	tools, kubeconfig := integrationEnv(t)
	it := &integration{ctx: context.Background(), k: newKube(t, kubeconfig), tools: tools, kubeconfig: kubeconfig,
		project: copyProject(t), progress: &bytes.Buffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pulumi progress (tail):\n%s", tail(it.progress.String(), 120))
		}
	})
	it.dev = it.open(t, "dev")
	it.traffic = deploy.Traffic{Kubectl: filepath.Join(tools, "bin", "kubectl"), Kubeconfig: kubeconfig, Namespace: devNS}
	return it
}

// open opens a stack of the copied project with its secrets generated.
func (it *integration) open(t *testing.T, stack string) *deploy.Stack {
	s, err := deploy.Open(it.ctx, deploy.Options{
		ProjectDir: it.project, Stack: stack, StateDir: filepath.Join(it.project, ".state"),
		ToolsDir: it.tools, Kubeconfig: it.kubeconfig, Passphrase: "integration", Progress: it.progress,
	})
	require.NoError(t, err)
	_, err = s.EnsureSecrets(it.ctx)
	require.NoError(t, err)
	return s
}

// badConfig: invalid config fails `up` and creates nothing.
func (it *integration) badConfig(t *testing.T) {
	before := namespaces(t, it.k)
	require.NoError(t, it.dev.SetConfig(it.ctx, "backendReplicas", "0"))
	_, _, err := it.dev.Up(it.ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `backendReplicas: "0" is not allowed`)
	assert.Equal(t, before, namespaces(t, it.k), "the cluster holds no new namespace")
	assert.Equal(t, http404, it.k.get(t, "/api/v1/namespaces/"+devNS, nil))
	require.NoError(t, it.dev.SetConfig(it.ctx, "backendReplicas", "1"))
}

// devUp brings the dev stack up: every tier ready, the credentials Job done, the seed's names.
func (it *integration) devUp(t *testing.T) {
	changes, outputs := it.upTimed(t, it.dev, "dev up")
	assert.NotEmpty(t, changes)
	assert.Equal(t, devNS, outputs["namespace"].Value)
	assert.Equal(t, "blue", outputs["activeColor"].Value)
	assert.Equal(t, components.Version, outputs["programVersion"].Value)
	_, newest, err := assets.Migrations()
	require.NoError(t, err)
	assert.EqualValues(t, newest, outputs["schemaVersion"].Value)
	assert.Equal(t, "database-service", outputs["databaseService"].Value)
	assert.Equal(t, "backend-service", outputs["backendService"].Value)
	assert.Equal(t, "<node-ip>:30180", outputs["previewAddresses"].Value.(map[string]any)["blue"])

	for _, name := range []string{"backend", "frontend-blue", "frontend-green"} {
		var d appsv1.Deployment
		it.k.mustGet(t, nsPath(devNS, "deployments")+"/"+name, &d)
		assert.Truef(t, available(d), "Deployment %s Available", name)
		assert.Equal(t, int32(1), d.Status.ReadyReplicas, name)
		if strings.HasPrefix(name, "frontend-") {
			// An API server without native sidecars would drop restartPolicy silently and
			// leave Fluent Bit as an init container that never completes.
			init := d.Spec.Template.Spec.InitContainers
			require.Len(t, init, 1, name)
			require.NotNil(t, init[0].RestartPolicy, "%s: the log collector is a native sidecar", name)
			assert.Equal(t, corev1.ContainerRestartPolicyAlways, *init[0].RestartPolicy, name)
		}
	}
	var sts appsv1.StatefulSet
	it.k.mustGet(t, nsPath(devNS, "statefulsets")+"/database", &sts)
	assert.Equal(t, int32(1), sts.Status.ReadyReplicas)
	var job batchv1.Job
	it.k.mustGet(t, "/apis/batch/v1/namespaces/"+devNS+"/jobs/database-credentials", &job)
	assert.Equal(t, int32(1), job.Status.Succeeded, "the credentials job ran before the backend")
	for _, claim := range []string{"data-database-0", "database-backups"} {
		waitClaimBound(t, it.k, devNS, claim, "standard")
	}
	for _, svc := range []string{
		"database-service", "database-readonly", "database-nodeport", "backend-service", "backend-nodeport",
		"frontend-service", "frontend-internal", "frontend-nodeport", "frontend-blue-preview", "frontend-green-preview",
	} {
		eventually(t, time.Minute, svc+" has ready endpoints", func() error {
			if len(readyEndpointPods(t, it.k, devNS, svc)) == 0 {
				return fmt.Errorf("%s has no ready endpoints", svc)
			}
			return nil
		})
	}
	var sa corev1.ServiceAccount
	it.k.mustGet(t, nsPath(devNS, "serviceaccounts")+"/backend", &sa)
	require.NotNil(t, sa.AutomountServiceAccountToken)
	assert.False(t, *sa.AutomountServiceAccountToken)
}

// noopUp: a second `up` changes nothing.
func (it *integration) noopUp(t *testing.T) {
	changes, _ := it.upTimed(t, it.dev, "no-op up")
	assert.Empty(t, changes)
}

// switchToGreen: the promotion check runs, then only the production selectors move; it times the switch and the traffic move.
func (it *integration) switchToGreen(t *testing.T) {
	require.NoError(t, it.dev.SetConfig(it.ctx, "activeColor", "green"))
	start := time.Now()
	planned, err := it.dev.Preview(it.ctx)
	require.NoError(t, err)
	timing(t, "switch preview", start)
	assert.Equal(t, []string{
		"kubernetes:batch/v1:Job frontend-promotion-job",
		"kubernetes:core/v1:Service frontend-internal",
		"kubernetes:core/v1:Service frontend-nodeport",
		"kubernetes:core/v1:Service frontend-service",
		"kubernetes:networking.k8s.io/v1:NetworkPolicy frontend-promotion-netpol",
	}, changedResources(planned))

	changes := it.switchTimed(t, "green", "switch up", "traffic moved")
	assert.Equal(t, changedResources(planned), changedResources(changes))
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-green-")
	assertServesOnly(t, it.k, devNS, "frontend-internal", "frontend-green-")
	assertServesOnly(t, it.k, devNS, "frontend-blue-preview", "frontend-blue-")
	var job batchv1.Job
	it.k.mustGet(t, "/apis/batch/v1/namespaces/"+devNS+"/jobs/frontend-promotion-check", &job)
	assert.Equal(t, int32(1), job.Status.Succeeded)
	assert.Equal(t, "green", job.Spec.Template.Annotations["ecommerce-platform/expected-color"])
}

// switchTimed switches the dev stack to a color and reports how long the switch took and
// when frontend-service's endpoints held only that color's pods.
func (it *integration) switchTimed(t *testing.T, color, switchLabel, movedLabel string) []deploy.Change {
	start := time.Now()
	moved := watchTrafficMoves(it.traffic, "frontend-service", "frontend-"+color+"-", start)
	changes, err := it.dev.Switch(it.ctx, color)
	require.NoError(t, err)
	timing(t, switchLabel, start)
	movedAfter := <-moved
	require.Positive(t, movedAfter, "frontend-service's endpoints moved to %s", color)
	t.Logf("integration timing: %-28s %6.1fs", movedLabel, movedAfter.Seconds())
	return changes
}

// upTimed runs `up` on a stack, which must succeed, and reports how long it took.
func (it *integration) upTimed(t *testing.T, s *deploy.Stack, label string) ([]deploy.Change, auto.OutputMap) {
	t.Helper()
	start := time.Now()
	changes, outputs, err := s.Up(it.ctx)
	require.NoError(t, err, label)
	timing(t, label, start)
	return changes, outputs
}

// switchBack restores blue.
func (it *integration) switchBack(t *testing.T) {
	changes := it.switchTimed(t, "blue", "switch back", "traffic moved back")
	assert.Len(t, changedResources(changes), 5)
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-blue-")
}

// colorState is what a color's objects are in the cluster: resourceVersion and content.
type colorState struct {
	Versions map[string]string
	Data     map[string]map[string]string
	Template string
}

func (it *integration) colorState(t *testing.T, color string) colorState {
	t.Helper()
	st := colorState{Versions: map[string]string{}, Data: map[string]map[string]string{}}
	var d appsv1.Deployment
	it.k.mustGet(t, nsPath(devNS, "deployments")+"/frontend-"+color, &d)
	st.Versions["deployment"] = d.ResourceVersion
	template, err := json.Marshal(d.Spec.Template)
	require.NoError(t, err)
	st.Template = string(template)
	for _, cm := range []string{"config", "dashboard"} {
		var m corev1.ConfigMap
		it.k.mustGet(t, nsPath(devNS, "configmaps")+"/frontend-"+color+"-"+cm, &m)
		st.Versions[cm], st.Data[cm] = m.ResourceVersion, m.Data
	}
	return st
}

// upgradeReachesOnlyIdle: blue is live. A change of the release content (the tier's rate
// limit: every color's nginx.conf) and of the migration run (the dev seed off: the
// migration set's hash) reaches green only: blue's Deployment and ConfigMaps keep their
// resourceVersion and content; the database-migrate Job runs again and completes before the
// backend's new pods start. Then green takes the traffic and blue, still the old release,
// takes it back.
func (it *integration) upgradeReachesOnlyIdle(t *testing.T) {
	blueBefore, greenBefore := it.colorState(t, "blue"), it.colorState(t, "green")
	var jobBefore batchv1.Job
	it.k.mustGet(t, "/apis/batch/v1/namespaces/"+devNS+"/jobs/database-migrate", &jobBefore)
	require.NoError(t, it.dev.SetConfig(it.ctx, "frontendRateLimit", "25"))
	require.NoError(t, it.dev.SetConfig(it.ctx, "databaseSeedData", "false"))
	t.Cleanup(func() {
		_ = it.dev.SetConfig(it.ctx, "frontendRateLimit", "20")
		_ = it.dev.SetConfig(it.ctx, "databaseSeedData", "true")
	})
	planned, err := it.dev.Preview(it.ctx)
	require.NoError(t, err)
	for _, c := range changeStrings(planned) {
		assert.NotContains(t, c, "frontend-blue", "the live color is planned to change: %s", c)
	}
	assert.Contains(t, changedResources(planned), "kubernetes:apps/v1:Deployment frontend-green-deployment")
	assert.Contains(t, changedResources(planned), "kubernetes:batch/v1:Job database-migrate")
	it.upTimed(t, it.dev, "upgrade up (idle color and migrations)")

	assert.Equal(t, blueBefore, it.colorState(t, "blue"), "the live color's objects changed")
	greenAfter := it.colorState(t, "green")
	assert.NotEqual(t, greenBefore.Data["config"]["nginx.conf"], greenAfter.Data["config"]["nginx.conf"])
	assert.Contains(t, greenAfter.Data["config"]["nginx.conf"], "25r/s")
	assert.NotEqual(t, greenBefore.Template, greenAfter.Template, "the idle color's pods roll onto the new nginx.conf")

	var job batchv1.Job
	it.k.mustGet(t, "/apis/batch/v1/namespaces/"+devNS+"/jobs/database-migrate", &job)
	assert.NotEqual(t, jobBefore.UID, job.UID, "the migration Job ran again")
	require.NotNil(t, job.Status.CompletionTime)
	var backend appsv1.Deployment
	it.k.mustGet(t, nsPath(devNS, "deployments")+"/backend", &backend)
	assert.Equal(t, job.Spec.Template.Annotations["checksum/migrations"], backend.Spec.Template.Annotations["checksum/migrations"])
	var sets appsv1.ReplicaSetList
	it.k.mustGet(t, "/apis/apps/v1/namespaces/"+devNS+"/replicasets?labelSelector=app.kubernetes.io%2Fname%3Dbackend", &sets)
	var rolled bool
	for _, rs := range sets.Items {
		if rs.Spec.Template.Annotations["checksum/migrations"] == job.Spec.Template.Annotations["checksum/migrations"] {
			rolled = true
			assert.False(t, rs.CreationTimestamp.Time.Before(job.Status.CompletionTime.Time),
				"the backend rolled (%s) before the migration Job completed (%s)", rs.CreationTimestamp, job.Status.CompletionTime)
		}
	}
	assert.True(t, rolled, "the backend rolled onto the new migration set")

	it.switchTimed(t, "green", "switch to the upgraded color", "traffic moved to green")
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-green-")
	assert.Equal(t, blueBefore.Data, it.colorState(t, "blue").Data, "after the switch the old color keeps its release")
	it.switchTimed(t, "blue", "roll back to the old release", "traffic moved back to blue")
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-blue-")
	assert.Equal(t, blueBefore, it.colorState(t, "blue"), "the rollback target never changed")
}

// failingCheck: a failing promotion check fails `up` and leaves traffic on blue; fixed, the next `up` passes.
func (it *integration) failingCheck(t *testing.T) {
	// The cluster's chaos stage fails the check pod of a color that does not serve the
	// version its config says (the cluster script installs it for version 9.9.9-broken).
	require.NoError(t, it.dev.SetConfig(it.ctx, "greenVersion", "9.9.9-broken"))
	require.NoError(t, it.dev.SetConfig(it.ctx, "activeColor", "green"))
	_, _, err := it.dev.Up(it.ctx)
	require.Error(t, err, "a failed promotion check fails the switch")
	assert.Contains(t, err.Error(), "frontend-promotion")
	var svc corev1.Service
	for _, name := range []string{"frontend-service", "frontend-internal", "frontend-nodeport"} {
		it.k.mustGet(t, nsPath(devNS, "services")+"/"+name, &svc)
		assert.Equal(t, "blue", svc.Spec.Selector["ecommerce-platform/color"], "%s stays on blue", name)
	}
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-blue-")

	require.NoError(t, it.dev.SetConfig(it.ctx, "greenVersion", "1.2.0"))
	it.upTimed(t, it.dev, "switch after a fix")
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-green-")

	_, err = it.dev.Switch(it.ctx, "blue")
	require.NoError(t, err)
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-blue-")
}

// idleRelease: a release on the idle color updates only its Deployment.
func (it *integration) idleRelease(t *testing.T) {
	require.NoError(t, it.dev.SetConfig(it.ctx, "greenVersion", "1.1.0"))
	require.NoError(t, it.dev.SetConfig(it.ctx, "greenImage", "nginxinc/nginx-unprivileged:1.27.5-alpine"))
	planned, err := it.dev.Preview(it.ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"update kubernetes:apps/v1:Deployment frontend-green-deployment"}, changeStrings(planned))
	it.upTimed(t, it.dev, "idle-color release")
	var d appsv1.Deployment
	it.k.mustGet(t, nsPath(devNS, "deployments")+"/frontend-green", &d)
	assert.Equal(t, "1.1.0", d.Spec.Template.Labels["app.kubernetes.io/version"])
	assertServesOnly(t, it.k, devNS, "frontend-service", "frontend-blue-")
}

// destroyDev: destroy leaves no namespace and no claim behind.
func (it *integration) destroyDev(t *testing.T) {
	start := time.Now()
	require.NoError(t, it.dev.Destroy(it.ctx))
	timing(t, "dev destroy", start)
	eventually(t, 2*time.Minute, "namespace "+devNS+" gone", func() error {
		if code := it.k.get(t, "/api/v1/namespaces/"+devNS, nil); code != http404 {
			return fmt.Errorf("namespace %s still answers %d", devNS, code)
		}
		return nil
	})
	var claims corev1.PersistentVolumeClaimList
	it.k.mustGet(t, "/api/v1/persistentvolumeclaims", &claims)
	for _, c := range claims.Items {
		assert.NotEqualf(t, devNS, c.Namespace, "PVC %s survived", c.Name)
	}
}

// prodObjectStorage are the off-site settings prod requires (pods are simulated: nothing
// connects to the endpoint).
var prodObjectStorage = map[string]string{"databaseOffsiteEndpoint": "https://s3.integration.invalid", "databaseOffsiteBucket": "integration-archive"}

// prodUp brings prod up (LoadBalancer, fast-ssd, two read replicas) and shows destroy refused while the database is protected.
func (it *integration) prodUp(t *testing.T) {
	prod := it.open(t, "prod")
	const prodNS = "ecommerce-platform"
	// Prod copies its archive off site: without the storage owner's settings it is refused,
	// naming them, and creates nothing.
	_, _, err := prod.Up(it.ctx)
	require.Error(t, err)
	for _, key := range []string{"databaseOffsiteEndpoint", "databaseOffsiteBucket", "offsiteAccessKeyId", "offsiteSecretAccessKey"} {
		assert.Contains(t, err.Error(), key)
	}
	assert.Equal(t, http404, it.k.get(t, "/api/v1/namespaces/"+prodNS, nil))
	for key, value := range prodObjectStorage {
		require.NoError(t, prod.SetConfig(it.ctx, key, value))
	}
	require.NoError(t, prod.SetSecret(it.ctx, "offsiteAccessKeyId", "integration-key-id"))
	require.NoError(t, prod.SetSecret(it.ctx, "offsiteSecretAccessKey", "integration-secret-key"))
	// Prod as a kube-prometheus-stack cluster runs it: the operator's CRDs are installed and
	// the stack registers its PodMonitors, PrometheusRule and dashboard, which the API
	// server validates against the CRDs' schemas.
	it.installOperatorCRDs(t)
	require.NoError(t, prod.SetConfig(it.ctx, "monitoring", "prometheus-operator"))
	// kwok runs no process in the members' pods: a stand-in does Patroni's part with the
	// members' own token (patroni_test.go).
	patroni := startPatroniStandIn(t, it.k, prodNS)
	_, outputs := it.upTimed(t, prod, "prod up")
	patroni.assertPatroniOnly(t, it.k, prodNS)
	it.assertMonitoringObjects(t, prodNS)
	// The archiver runs with a claim of its own, on the prod class.
	var archiver appsv1.StatefulSet
	it.k.mustGet(t, nsPath(prodNS, "statefulsets")+"/database-archiver", &archiver)
	assert.Equal(t, int32(1), archiver.Status.ReadyReplicas)
	waitClaimBound(t, it.k, prodNS, "archive-database-archiver-0", "fast-ssd")
	var svc corev1.Service
	it.k.mustGet(t, nsPath(prodNS, "services")+"/frontend-service", &svc)
	assert.Equal(t, corev1.ServiceTypeLoadBalancer, svc.Spec.Type)
	require.NotEmpty(t, svc.Status.LoadBalancer.Ingress, "LoadBalancer address assigned")
	assert.Equal(t, "https://"+svc.Status.LoadBalancer.Ingress[0].IP, outputs["productionAddress"].Value)
	// Three Patroni members, each with a claim of its own, and no StatefulSet of replicas;
	// database-service serves the member labelled primary, database-readonly the replicas.
	var members appsv1.StatefulSet
	it.k.mustGet(t, nsPath(prodNS, "statefulsets")+"/database", &members)
	assert.Equal(t, int32(3), members.Status.ReadyReplicas)
	assert.Equal(t, http404, it.k.get(t, nsPath(prodNS, "statefulsets")+"/database-replica", nil))
	for _, claim := range []string{"data-database-0", "data-database-1", "data-database-2"} {
		waitClaimBound(t, it.k, prodNS, claim, "fast-ssd")
	}
	eventually(t, time.Minute, "database-readonly serves exactly the replica members", func() error {
		pods := readyEndpointPods(t, it.k, prodNS, "database-readonly")
		if strings.Join(pods, ",") != "database-1,database-2" {
			return fmt.Errorf("database-readonly serves %v", pods)
		}
		return nil
	})
	assert.Equal(t, []string{"database-0"}, readyEndpointPods(t, it.k, prodNS, "database-service"))
	for _, name := range []string{"frontend-blue", "frontend-green"} {
		var d appsv1.Deployment
		it.k.mustGet(t, nsPath(prodNS, "deployments")+"/"+name, &d)
		assert.Equal(t, int32(3), d.Status.ReadyReplicas, name)
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	it.k.mustGet(t, nsPath(prodNS, "horizontalpodautoscalers")+"/backend", &hpa)
	assert.Equal(t, int32(10), hpa.Spec.MaxReplicas)

	err = prod.Destroy(it.ctx)
	require.Error(t, err, "destroy must be refused while the database is protected")
	assert.Contains(t, err.Error(), "protect")
	var sts appsv1.StatefulSet
	it.k.mustGet(t, nsPath(prodNS, "statefulsets")+"/database", &sts)
	assert.Equal(t, http200, it.k.get(t, "/api/v1/namespaces/"+prodNS, nil), "the namespace survives")
}

// TestIntegrationRenderedManifests renders the prod stack through the real engine and
// provider (no cluster) and decodes every manifest strictly into k8s.io/api types.
func TestIntegrationRenderedManifests(t *testing.T) {
	tools := os.Getenv("ECOMMERCE_TOOLS")
	if tools == "" {
		integrationEnv(t)
	}
	ctx := context.Background()
	project := copyProject(t)
	out := filepath.Join(t.TempDir(), "rendered")
	start := time.Now()
	files, err := deploy.Render(ctx, deploy.RenderOptions{
		Options: deploy.Options{ProjectDir: project, Stack: "prod", ToolsDir: tools, Passphrase: "integration", Progress: io.Discard},
		OutDir:  out,
		Config:  prodObjectStorage,
	})
	require.NoError(t, err)
	timing(t, "render prod", start)
	kinds := map[string]int{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, doc := range strings.Split(string(raw), "\n---\n") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var head struct{ Kind string }
			require.NoError(t, yaml.Unmarshal([]byte(doc), &head))
			obj := typedObject(head.Kind)
			require.NotNilf(t, obj, "%s: unexpected kind %q", f, head.Kind)
			require.NoErrorf(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s does not decode strictly as %s", f, head.Kind)
			kinds[head.Kind]++
		}
	}
	assert.Equal(t, map[string]int{
		// The archiver: a StatefulSet, its headless Service and NetworkPolicy, the off-site Secret.
		// The database-migrate Job with its NetworkPolicy and its migrations ConfigMap (the
		// init scripts' ConfigMap is gone): Jobs are it, the credentials Job and the promotion check.
		// Patroni's members replace the primary and the replica StatefulSet (with its Service,
		// disruption budget and policy) and add their ServiceAccount, Role, RoleBinding and
		// the database-patroni ConfigMap.
		"Namespace": 1, "ResourceQuota": 1, "LimitRange": 1, "NetworkPolicy": 11, "ServiceAccount": 5,
		"Secret": 3, "ConfigMap": 9, "StatefulSet": 2, "Deployment": 3, "Service": 8, "PodDisruptionBudget": 4,
		"PersistentVolumeClaim": 1, "CronJob": 2, "Job": 3, "HorizontalPodAutoscaler": 1, "Role": 1, "RoleBinding": 1,
	}, kinds)
}

const (
	http200 = 200
	http404 = 404
)

func typedObject(kind string) any {
	switch kind {
	case "Namespace":
		return &corev1.Namespace{}
	case "ResourceQuota":
		return &corev1.ResourceQuota{}
	case "LimitRange":
		return &corev1.LimitRange{}
	case "ServiceAccount":
		return &corev1.ServiceAccount{}
	case "Secret":
		return &corev1.Secret{}
	case "ConfigMap":
		return &corev1.ConfigMap{}
	case "Service":
		return &corev1.Service{}
	case "PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "Deployment":
		return &appsv1.Deployment{}
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "Job":
		return &batchv1.Job{}
	case "CronJob":
		return &batchv1.CronJob{}
	case "NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "Ingress":
		return &networkingv1.Ingress{}
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "Role":
		return &rbacv1.Role{}
	case "RoleBinding":
		return &rbacv1.RoleBinding{}
	}
	return nil
}

func namespaces(t *testing.T, k *kube) []string {
	var list corev1.NamespaceList
	k.mustGet(t, "/api/v1/namespaces", &list)
	var out []string
	for _, n := range list.Items {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// waitClaimBound waits until a PVC of the given class is Bound.
func waitClaimBound(t *testing.T, k *kube, ns, claim, class string) {
	eventually(t, time.Minute, "PVC "+claim+" Bound", func() error {
		var pvc corev1.PersistentVolumeClaim
		k.mustGet(t, nsPath(ns, "persistentvolumeclaims")+"/"+claim, &pvc)
		if pvc.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("PVC %s is %s", claim, pvc.Status.Phase)
		}
		if got := *pvc.Spec.StorageClassName; got != class {
			return fmt.Errorf("PVC %s has class %s, want %s", claim, got, class)
		}
		return nil
	})
}

func available(d appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// readyEndpointPods lists the pods behind a Service's ready endpoints.
func readyEndpointPods(t *testing.T, k *kube, ns, service string) []string {
	var slices discoveryv1.EndpointSliceList
	k.mustGet(t, nsPath(ns, "endpointslices")+"?labelSelector=kubernetes.io/service-name="+service, &slices)
	return deploy.ReadyPods(slices)
}

// assertServesOnly waits until a Service's ready endpoints are exactly pods with a prefix.
func assertServesOnly(t *testing.T, k *kube, ns, service, podPrefix string) {
	eventually(t, time.Minute, service+" serves only "+podPrefix+"*", func() error {
		pods := readyEndpointPods(t, k, ns, service)
		if len(pods) == 0 {
			return errors.New(service + " has no ready endpoints")
		}
		for _, p := range pods {
			if !strings.HasPrefix(p, podPrefix) {
				return fmt.Errorf("%s endpoints %v include %s", service, pods, p)
			}
		}
		return nil
	})
}

// changedResources are the resources a preview or update touches, as "type name", sorted
// (a replaced Job shows up once, whatever steps its replacement takes).
func changedResources(changes []deploy.Change) []string {
	set := map[string]bool{}
	for _, c := range changes {
		set[c.Type+" "+c.Name] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// watchTrafficMoves reports how long after start a Service's ready endpoints first were only
// pods with the prefix (the moment production traffic moved), measured with the driver's own
// check (deploy.Traffic, the one `platform switch` reports); -1 if that never happened.
func watchTrafficMoves(tr deploy.Traffic, service, podPrefix string, start time.Time) <-chan time.Duration {
	done := make(chan time.Duration, 1)
	go func() {
		moved, err := tr.WaitServedOnlyBy(context.Background(), service, podPrefix, start, 3*time.Minute)
		if err != nil {
			moved = -1
		}
		done <- moved
	}()
	return done
}

func changeStrings(changes []deploy.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.String())
	}
	return out
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// recoveryUp brings up a new stack (dev's shape, its own namespace) with databaseRecoverFrom
// prod's off-site archive: its database runs the recovery's init containers instead of
// initdb, and its own archive goes to another prefix.
func (it *integration) recoveryUp(t *testing.T) {
	const ns = "ecommerce-recover"
	dev, err := os.ReadFile(filepath.Join(it.project, "Pulumi.dev.yaml"))
	require.NoError(t, err)
	recoverFile := strings.Replace(string(dev), "ecommerce-platform:namespace: ecommerce-dev", "ecommerce-platform:namespace: "+ns, 1)
	recoverFile = strings.Replace(recoverFile, `ecommerce-platform:exposeNodePorts: "true"`, `ecommerce-platform:exposeNodePorts: "false"`, 1)
	require.NoError(t, os.WriteFile(filepath.Join(it.project, "Pulumi.recover.yaml"), []byte(recoverFile), 0o600))
	stack := it.open(t, "recover")
	for key, value := range map[string]string{
		"databaseOffsiteEndpoint": prodObjectStorage["databaseOffsiteEndpoint"],
		"databaseRecoverFrom":     "s3://" + prodObjectStorage["databaseOffsiteBucket"] + "/prod",
		"databaseRecoveryTarget":  time.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
	} {
		require.NoError(t, stack.SetConfig(it.ctx, key, value))
	}
	require.NoError(t, stack.SetSecret(it.ctx, "offsiteAccessKeyId", "integration-key-id"))
	require.NoError(t, stack.SetSecret(it.ctx, "offsiteSecretAccessKey", "integration-secret-key"))
	it.upTimed(t, stack, "recovery stack up")
	var sts appsv1.StatefulSet
	it.k.mustGet(t, nsPath(ns, "statefulsets")+"/database", &sts)
	var names []string
	for _, c := range sts.Spec.Template.Spec.InitContainers {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"recovery-fetch", "recovery-bootstrap"}, names, "the database bootstraps from the archive")
	assert.Equal(t, int32(1), sts.Status.ReadyReplicas)
	start := time.Now()
	require.NoError(t, stack.Destroy(it.ctx))
	timing(t, "recovery stack destroy", start)
}

// installOperatorCRDs generates the Prometheus Operator's CRDs from its own API types (the
// module the program builds its objects with; controller-gen, as the operator's project
// does) and applies them to the cluster.
func (it *integration) installOperatorCRDs(t *testing.T) {
	dir := t.TempDir()
	gen := exec.Command(filepath.Join(it.tools, "bin", "controller-gen"), "crd:crdVersions=v1",
		"paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1", "output:crd:dir="+dir)
	gen.Dir = testkit.ProjectFile(t, ".")
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "controller-gen: %s", out)
	kubectl := filepath.Join(it.tools, "bin", "kubectl")
	for _, crd := range []string{"podmonitors", "prometheusrules"} {
		file := filepath.Join(dir, "monitoring.coreos.com_"+crd+".yaml")
		out, err := exec.Command(kubectl, "--kubeconfig", it.kubeconfig, "apply", "--server-side", "-f", file).CombinedOutput()
		require.NoError(t, err, "kubectl apply %s: %s", file, out)
		out, err = exec.Command(kubectl, "--kubeconfig", it.kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
			"crd/"+crd+".monitoring.coreos.com").CombinedOutput()
		require.NoError(t, err, "CRD %s not established: %s", crd, out)
	}
}

// assertMonitoringObjects: the stack's PodMonitors and PrometheusRule are in the cluster as
// the API server accepted them, and the dashboard's ConfigMap carries Grafana's label.
func (it *integration) assertMonitoringObjects(t *testing.T, ns string) {
	var monitors monitoringv1.PodMonitorList
	it.k.mustGet(t, "/apis/monitoring.coreos.com/v1/namespaces/"+ns+"/podmonitors", &monitors)
	var names []string
	for _, m := range monitors.Items {
		names = append(names, m.Name)
		assert.Equal(t, "kube-prometheus-stack", m.Labels["release"], m.Name)
		require.Len(t, m.Spec.PodMetricsEndpoints, 1, m.Name)
		assert.Equal(t, "metrics", *m.Spec.PodMetricsEndpoints[0].Port, m.Name)
	}
	sort.Strings(names)
	// Prod's replicas are Patroni members of database: one PodMonitor covers them all.
	assert.Equal(t, []string{"backend", "database", "database-archiver", "frontend"}, names)
	var rule monitoringv1.PrometheusRule
	it.k.mustGet(t, "/apis/monitoring.coreos.com/v1/namespaces/"+ns+"/prometheusrules/ecommerce-alerts", &rule)
	var alerts []string
	for name := range testkit.Alerts(rule.Spec.Groups) {
		alerts = append(alerts, name)
	}
	var want []string
	for name := range testkit.Alerts(testkit.AlertGroups(t, testkit.OperatorRun(t, "prod", nil))) {
		want = append(want, name)
	}
	sort.Strings(alerts)
	sort.Strings(want)
	assert.Equal(t, want, alerts, "every alert of prod, kept by the API server")
	var dashboard corev1.ConfigMap
	it.k.mustGet(t, "/api/v1/namespaces/"+ns+"/configmaps/ecommerce-dashboard", &dashboard)
	assert.Equal(t, "1", dashboard.Labels["grafana_dashboard"])
	assert.Contains(t, dashboard.Data["ecommerce-platform.json"], `"uid": "ecommerce-`+ns+`"`)
}
