package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"ecommerce-platform/components"
)

const project = "ecommerce-platform"

// unset, as an override, removes a key from the stack's config.
const unset = "<unset>"

// testSecrets are the secret config values every mocked run gets unless a test removes one.
var testSecrets = map[string]string{
	"dbPassword":          "db-owner-password-7f3a9c",
	"apiDbPassword":       "api-authenticator-password-51be",
	"jwtSecret":           "jwt-secret-that-is-at-least-32-characters-long-0c4d",
	"replicationPassword": "replicator-password-9e21",
}

// recorded is one resource the program registered, with its inputs as plain Go values
// (secrets unwrapped, so tests can look for them).
type recorded struct {
	Type    string
	Name    string // Pulumi name
	Inputs  map[string]any
	Protect bool
	Parent  string
	Deps    []string
}

// K8sName is metadata.name, the name the object has in the cluster.
func (r recorded) K8sName() string { s, _ := dig(r.Inputs, "metadata", "name").(string); return s }

// recorder is the one shared mock: it records every resource's inputs and echoes them back
// as outputs, like a provider that accepts everything.
type recorder struct {
	mu        sync.Mutex
	resources []recorded
}

func (m *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r := recorded{Type: args.TypeToken, Name: args.Name, Inputs: plainMap(args.Inputs)}
	if rpc := args.RegisterRPC; rpc != nil {
		r.Protect = rpc.GetProtect()
		r.Parent = rpc.GetParent()
		r.Deps = rpc.GetDependencies()
	}
	m.mu.Lock()
	m.resources = append(m.resources, r)
	m.mu.Unlock()
	return args.Name + "-id", args.Inputs, nil
}

func (m *recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

func plainMap(pm resource.PropertyMap) map[string]any {
	out := map[string]any{}
	for k, v := range pm {
		out[string(k)] = plain(v)
	}
	return out
}

func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element)
	case v.IsOutput():
		return plain(v.OutputValue().Element)
	case v.IsObject():
		return plainMap(v.ObjectValue())
	case v.IsArray():
		var out []any
		for _, e := range v.ArrayValue() {
			out = append(out, plain(e))
		}
		return out
	case v.IsComputed():
		return "<computed>"
	default:
		return v.Mappable()
	}
}

// run is one mocked `pulumi up` of a stack.
type run struct {
	Err       error
	Resources []recorded
}

// stackConfig is a stack's real config (Pulumi.<stack>.yaml) with overrides applied: a
// value of unset removes the key. Secrets are the test secrets, marked secret.
func stackConfig(t testing.TB, stack string, overrides map[string]string) (map[string]string, []string) {
	t.Helper()
	return stackConfigFromFile(t, projectFile(t, "Pulumi."+stack+".yaml"), overrides)
}

// projectFile is the path of a file at the project's root (Pulumi.yaml, a stack file),
// found from the test's folder up to go.mod, so every test package reads the same files.
func projectFile(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, name)
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test's folder")
		dir = parent
	}
}

// stackConfigFromFile reads a stack file the way the Pulumi CLI does and applies overrides.
// Every required secret gets its test value, marked secret, whether or not the file sets it.
func stackConfigFromFile(t testing.TB, path string, overrides map[string]string) (map[string]string, []string) {
	t.Helper()
	file := readStackFile(t, path)
	cfg := file.Values
	secret := map[string]bool{}
	for k := range file.Secure {
		secret[k] = true
	}
	for k, v := range testSecrets {
		cfg[project+":"+k] = v
		secret[project+":"+k] = true
	}
	for k, v := range overrides {
		full := project + ":" + k
		if v == unset {
			delete(cfg, full)
			delete(secret, full)
			continue
		}
		cfg[full] = v
	}
	var secretKeys []string
	for k := range secret {
		if _, ok := cfg[k]; ok {
			secretKeys = append(secretKeys, k)
		}
	}
	sort.Strings(secretKeys)
	return cfg, secretKeys
}

// stackFile is a Pulumi.<stack>.yaml as the CLI reads it.
type stackFile struct {
	Values map[string]string // every key, as the program sees it
	Secure map[string]bool   // keys stored as `secure:` ciphertext
}

// readStackFile reads a stack file the way the Pulumi CLI does: a string is itself, another
// scalar, list or object is its JSON text, and `{secure: <ciphertext>}` is a secret. The
// mocks cannot decrypt, so a secret reads as its test value (testSecrets, or a fixed value
// for any other key), and is marked secret.
func readStackFile(t testing.TB, path string) stackFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc), "parse %s", path)
	out := stackFile{Values: map[string]string{}, Secure: map[string]bool{}}
	for key, v := range doc.Config {
		switch val := v.(type) {
		case string:
			out.Values[key] = val
		case map[string]any:
			if cipher, ok := val["secure"].(string); ok && len(val) == 1 {
				require.NotEmptyf(t, cipher, "%s in %s: empty secure value", key, path)
				out.Values[key] = testSecretFor(key)
				out.Secure[key] = true
				continue
			}
			out.Values[key] = jsonText(t, val)
		default:
			out.Values[key] = jsonText(t, val)
		}
	}
	return out
}

// testSecretFor is the value a mocked run uses for a key stored as a secret.
func testSecretFor(fullKey string) string {
	if v, ok := testSecrets[strings.TrimPrefix(fullKey, project+":")]; ok {
		return v
	}
	return "test-secret-value-of-" + fullKey
}

func jsonText(t testing.TB, v any) string {
	t.Helper()
	js, err := json.Marshal(v)
	require.NoError(t, err)
	return string(js)
}

// runProgram runs components.Program under the shared mock with a stack's config.
func runProgram(t testing.TB, stack string, overrides map[string]string) run {
	t.Helper()
	cfg, secretKeys := stackConfig(t, stack, overrides)
	return runWithConfig(t, stack, cfg, secretKeys)
}

func runWithConfig(t testing.TB, stack string, cfg map[string]string, secretKeys []string) run {
	t.Helper()
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	keys, err := json.Marshal(secretKeys)
	require.NoError(t, err)
	t.Setenv(pulumi.EnvConfig, string(js))
	t.Setenv(pulumi.EnvConfigSecretKeys, string(keys))
	rec := &recorder{}
	err = pulumi.RunErr(components.Program, pulumi.WithMocks(project, stack, rec))
	return run{Err: err, Resources: rec.resources}
}

// mustRun runs a stack that must succeed.
func mustRun(t testing.TB, stack string, overrides map[string]string) run {
	t.Helper()
	r := runProgram(t, stack, overrides)
	require.NoError(t, r.Err)
	return r
}

// kubernetes is every Kubernetes object registered, leaving out components and the stack.
func (r run) kubernetes() []recorded {
	var out []recorded
	for _, res := range r.Resources {
		if strings.HasPrefix(res.Type, "kubernetes:") {
			out = append(out, res)
		}
	}
	return out
}

func (r run) ofType(typ string) []recorded {
	var out []recorded
	for _, res := range r.Resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	return out
}

// object finds one Kubernetes object by type and cluster name.
func (r run) object(t testing.TB, typ, name string) recorded {
	t.Helper()
	var found []recorded
	for _, res := range r.ofType(typ) {
		if res.K8sName() == name {
			found = append(found, res)
		}
	}
	require.Lenf(t, found, 1, "want exactly one %s named %q", typ, name)
	return found[0]
}

func (r run) names(typ string) []string {
	var out []string
	for _, res := range r.ofType(typ) {
		out = append(out, res.K8sName())
	}
	sort.Strings(out)
	return out
}

// Type tokens of the objects the tests look at.
const (
	tDeployment  = "kubernetes:apps/v1:Deployment"
	tStatefulSet = "kubernetes:apps/v1:StatefulSet"
	tCronJob     = "kubernetes:batch/v1:CronJob"
	tJob         = "kubernetes:batch/v1:Job"
	tService     = "kubernetes:core/v1:Service"
	tSecret      = "kubernetes:core/v1:Secret"
	tConfigMap   = "kubernetes:core/v1:ConfigMap"
	tNamespace   = "kubernetes:core/v1:Namespace"
	tNetPol      = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	tHPA         = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
	tPDB         = "kubernetes:policy/v1:PodDisruptionBudget"
	tSA          = "kubernetes:core/v1:ServiceAccount"
	tPVC         = "kubernetes:core/v1:PersistentVolumeClaim"
	tIngress     = "kubernetes:networking.k8s.io/v1:Ingress"
)

// dig walks nested maps and lists (ints index lists).
func dig(v any, path ...any) any {
	for _, p := range path {
		switch key := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[key]
		case int:
			l, ok := v.([]any)
			if !ok || key >= len(l) {
				return nil
			}
			v = l[key]
		}
	}
	return v
}

func list(v any) []any { l, _ := v.([]any); return l }

func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, val := range m {
		out[k], _ = val.(string)
	}
	return out
}

// podTemplate is the pod template of a workload (Deployment, StatefulSet or CronJob).
func podTemplate(w recorded) map[string]any {
	if w.Type == tCronJob {
		t, _ := dig(w.Inputs, "spec", "jobTemplate", "spec", "template").(map[string]any)
		return t
	}
	t, _ := dig(w.Inputs, "spec", "template").(map[string]any)
	return t
}

// workloads are every object that runs pods.
func (r run) workloads() []recorded {
	var out []recorded
	for _, typ := range []string{tDeployment, tStatefulSet, tCronJob, tJob} {
		out = append(out, r.ofType(typ)...)
	}
	return out
}

// containers of a pod template; init containers first, flagged.
type container struct {
	Spec map[string]any
	Init bool
}

func (c container) Name() string { s, _ := c.Spec["name"].(string); return s }

func containersOf(tmpl map[string]any) []container {
	var out []container
	for _, c := range list(dig(tmpl, "spec", "initContainers")) {
		out = append(out, container{Spec: c.(map[string]any), Init: true})
	}
	for _, c := range list(dig(tmpl, "spec", "containers")) {
		out = append(out, container{Spec: c.(map[string]any)})
	}
	return out
}

// number reads a mocked number (numbers arrive as float64).
func number(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// selects reports whether a label selector matches a label set.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// snapshot is every registered resource as canonical JSON keyed by type and Pulumi name:
// two runs that register the same objects with the same inputs, options and parents have
// equal snapshots.
func snapshot(r run) map[string]string {
	out := map[string]string{}
	for _, res := range r.Resources {
		deps := append([]string(nil), res.Deps...)
		sort.Strings(deps)
		js, err := json.Marshal(map[string]any{
			"inputs": res.Inputs, "protect": res.Protect, "parent": res.Parent, "deps": deps,
		})
		if err != nil {
			panic(err)
		}
		out[res.Type+" "+res.Name] = string(js)
	}
	return out
}
