// Package testkit is what every test package shares: the one mock that runs
// components.Program and records every resource's inputs, typed reads of what it recorded,
// the project's stack files, and the lookup of real engines and free ports. The packages
// beside it in tests/ are split by what they need: mocked (nothing), postgres and web
// (engines), attack (both), contract (a sandbox) and integration (a cluster).
package testkit

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
	"ecommerce-platform/components/config"
)

// Project is the Pulumi project name, the prefix of every config key.
const Project = config.ProjectName

// Unset, as an override,, removes a key from the stack's config.
const Unset = "<unset>"

// TestSecrets are the secret config values every mocked run gets unless a test removes one.
var TestSecrets = map[string]string{
	"dbPassword":          "db-owner-password-7f3a9c",
	"apiDbPassword":       "api-authenticator-password-51be",
	"jwtSecret":           "jwt-secret-that-is-at-least-32-characters-long-0c4d",
	"replicationPassword": "replicator-password-9e21",
}

// Recorded is one resource the program registered, with its inputs as plain Go values
// (secrets unwrapped, so tests can look for them).
type Recorded struct {
	Type    string
	Name    string // Pulumi name
	Inputs  map[string]any
	Protect bool
	Parent  string
	Deps    []string
}

// K8sName is metadata.name, the name the object has in the cluster.
func (r Recorded) K8sName() string {
	meta, _ := r.Inputs["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	return name
}

// recorder is the one shared mock: it records every resource's inputs and echoes them back
// as outputs, like a provider that accepts everything.
type recorder struct {
	mu        sync.Mutex
	resources []Recorded
}

// NewResource records one registration and echoes its inputs back as its outputs.
func (m *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r := Recorded{Type: args.TypeToken, Name: args.Name, Inputs: plainMap(args.Inputs)}
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

// Call answers the program's invokes (none is expected to matter) with their arguments.
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

// Run is one mocked `pulumi up` of a stack.
type Run struct {
	Err       error
	Resources []Recorded
}

// StackConfig is a stack's real config (Pulumi.<stack>.yaml) with overrides applied: a
// value of unset removes the key. Secrets are the test secrets, marked secret.
func StackConfig(t testing.TB, stack string, overrides map[string]string) (map[string]string, []string) {
	t.Helper()
	return StackConfigFromFile(t, ProjectFile(t, "Pulumi."+stack+".yaml"), overrides)
}

// ProjectFile is the path of a file at the project's root (Pulumi.yaml, a stack file),
// found from the test's folder up to go.mod, so every test package reads the same files.
func ProjectFile(t testing.TB, name string) string {
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

// StackConfigFromFile reads a stack file the way the Pulumi CLI does and applies overrides.
// Every required secret gets its test value, marked secret, whether or not the file sets it.
func StackConfigFromFile(t testing.TB, path string, overrides map[string]string) (map[string]string, []string) {
	t.Helper()
	file := ReadStackFile(t, path)
	cfg := file.Values
	secret := map[string]bool{}
	for k := range file.Secure {
		secret[k] = true
	}
	for k, v := range TestSecrets {
		cfg[Project+":"+k] = v
		secret[Project+":"+k] = true
	}
	for k, v := range overrides {
		full := Project + ":" + k
		if v == Unset {
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

// ReadStackFile reads a stack file the way the Pulumi CLI does: a string is itself, another
// scalar, list or object is its JSON text, and `{secure: <ciphertext>}` is a secret. The
// mocks cannot decrypt, so a secret reads as its test value (TestSecrets, or a fixed value
// for any other key), and is marked secret.
func ReadStackFile(t testing.TB, path string) stackFile {
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
	if v, ok := TestSecrets[strings.TrimPrefix(fullKey, Project+":")]; ok {
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

// RunProgram runs components.Program under the shared mock with a stack's config.
func RunProgram(t testing.TB, stack string, overrides map[string]string) Run {
	t.Helper()
	cfg, secretKeys := StackConfig(t, stack, overrides)
	return RunWithConfig(t, stack, cfg, secretKeys)
}

// RunWithConfig runs the program once on exactly this config (full keys); secretKeys are
// marked secret, as `pulumi config set --secret` does.
func RunWithConfig(t testing.TB, stack string, cfg map[string]string, secretKeys []string) Run {
	t.Helper()
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	keys, err := json.Marshal(secretKeys)
	require.NoError(t, err)
	t.Setenv(pulumi.EnvConfig, string(js))
	t.Setenv(pulumi.EnvConfigSecretKeys, string(keys))
	rec := &recorder{}
	err = pulumi.RunErr(components.Program, pulumi.WithMocks(Project, stack, rec))
	return Run{Err: err, Resources: rec.resources}
}

// MustRun runs a stack that must succeed.
func MustRun(t testing.TB, stack string, overrides map[string]string) Run {
	t.Helper()
	r := RunProgram(t, stack, overrides)
	require.NoError(t, r.Err)
	return r
}

// Kubernetes is every Kubernetes object registered, leaving out components and the stack.
func (r Run) Kubernetes() []Recorded {
	var out []Recorded
	for _, res := range r.Resources {
		if strings.HasPrefix(res.Type, "kubernetes:") {
			out = append(out, res)
		}
	}
	return out
}

// OfType lists the recorded resources of one type token, in registration order.
func (r Run) OfType(typ string) []Recorded {
	var out []Recorded
	for _, res := range r.Resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	return out
}

// Object finds one Kubernetes object by type and cluster name.
func (r Run) Object(t testing.TB, typ, name string) Recorded {
	t.Helper()
	var found []Recorded
	for _, res := range r.OfType(typ) {
		if res.K8sName() == name {
			found = append(found, res)
		}
	}
	require.Lenf(t, found, 1, "want exactly one %s named %q", typ, name)
	return found[0]
}

// Names are the Kubernetes names of the recorded objects of one type, sorted.
func (r Run) Names(typ string) []string {
	var out []string
	for _, res := range r.OfType(typ) {
		out = append(out, res.K8sName())
	}
	sort.Strings(out)
	return out
}

// Type tokens of the objects the tests look at.
const (
	Deployment              = "kubernetes:apps/v1:Deployment"
	StatefulSet             = "kubernetes:apps/v1:StatefulSet"
	CronJob                 = "kubernetes:batch/v1:CronJob"
	Job                     = "kubernetes:batch/v1:Job"
	Service                 = "kubernetes:core/v1:Service"
	Secret                  = "kubernetes:core/v1:Secret"
	ConfigMap               = "kubernetes:core/v1:ConfigMap"
	Namespace               = "kubernetes:core/v1:Namespace"
	NetworkPolicy           = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	HorizontalPodAutoscaler = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
	PodDisruptionBudget     = "kubernetes:policy/v1:PodDisruptionBudget"
	ServiceAccount          = "kubernetes:core/v1:ServiceAccount"
	PersistentVolumeClaim   = "kubernetes:core/v1:PersistentVolumeClaim"
	Ingress                 = "kubernetes:networking.k8s.io/v1:Ingress"
)

// Workloads are every object that runs pods.
func (r Run) Workloads() []Recorded {
	var out []Recorded
	for _, typ := range []string{Deployment, StatefulSet, CronJob, Job} {
		out = append(out, r.OfType(typ)...)
	}
	return out
}

// Selects reports whether a label selector matches a label set.
func Selects(selector, labels map[string]string) bool {
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

// Snapshot is every registered resource as canonical JSON keyed by type and Pulumi name:
// two runs that register the same objects with the same inputs, options and parents have
// equal snapshots.
func Snapshot(r Run) map[string]string {
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
