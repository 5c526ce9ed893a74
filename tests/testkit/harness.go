// Package testkit is what every test package shares: the one mock that runs
// components.Program and records every resource's inputs, typed reads of what it recorded,
// the project's stack files, and the lookup of real engines and free ports. The packages
// beside it in tests/ are split by what they need: mocked (nothing), postgres and web
// (engines), attack (both), contract (a sandbox) and integration (a cluster).
package testkit

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"

	"ecommerce-platform/components"
)

// Recorded is one resource the program registered, with its inputs as plain Go values
// (secrets unwrapped, so tests can look for them).
type Recorded struct {
	Type    string
	Name    string // Pulumi name
	Inputs  map[string]any
	Protect bool
	Parent  string
	Deps    []string
	// IgnoreChanges are the input paths Pulumi keeps from the state (a held color's objects).
	IgnoreChanges []string
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
	// outputs are the stack's own outputs of a previous update, which the program reads
	// back through a StackReference to itself (nil: a first update).
	outputs map[string]any
}

// NewResource records one registration and echoes its inputs back as its outputs.
func (m *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r := Recorded{Type: args.TypeToken, Name: args.Name, Inputs: components.PlainInputs(args.Inputs)}
	if rpc := args.RegisterRPC; rpc != nil {
		r.Protect = rpc.GetProtect()
		r.Parent = rpc.GetParent()
		r.Deps = rpc.GetDependencies()
		r.IgnoreChanges = rpc.GetIgnoreChanges()
	}
	m.mu.Lock()
	m.resources = append(m.resources, r)
	m.mu.Unlock()
	if args.TypeToken == "pulumi:pulumi:StackReference" {
		outputs := args.Inputs.Copy()
		outputs["outputs"] = resource.NewObjectProperty(resource.NewPropertyMapFromMap(m.outputs))
		return args.Name + "-id", outputs, nil
	}
	return args.Name + "-id", args.Inputs, nil
}

// Call answers the program's invokes (none is expected to matter) with their arguments.
func (m *recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

// Run is one mocked `pulumi up` of a stack.
type Run struct {
	Err       error
	Resources []Recorded
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
	return runMocked(t, stack, cfg, secretKeys, nil)
}

// RunAfter runs a stack's update after an earlier one whose outputs were previous (what
// the program reads back of itself: which release each frontend color runs).
func RunAfter(t testing.TB, stack string, overrides map[string]string, previous map[string]any) Run {
	t.Helper()
	cfg, secretKeys := StackConfig(t, stack, overrides)
	r := runMocked(t, stack, cfg, secretKeys, previous)
	require.NoError(t, r.Err)
	return r
}

// TryRunAfter is RunAfter for a run that may fail: the error is the run's, not the test's.
func TryRunAfter(t testing.TB, stack string, overrides map[string]string, previous map[string]any) Run {
	t.Helper()
	cfg, secretKeys := StackConfig(t, stack, overrides)
	return runMocked(t, stack, cfg, secretKeys, previous)
}

func runMocked(t testing.TB, stack string, cfg map[string]string, secretKeys []string, previous map[string]any) Run {
	t.Helper()
	setConfigEnv(t, cfg, secretKeys)
	rec := &recorder{outputs: previous}
	err := pulumi.RunErr(components.Program, pulumi.WithMocks(Project, stack, rec))
	return Run{Err: err, Resources: rec.resources}
}

// SetStackConfig makes a stack's config (with overrides) the config of the next
// pulumi.RunErr, for a test that runs a component of its own under mocks.
func SetStackConfig(t testing.TB, stack string, overrides map[string]string) {
	t.Helper()
	cfg, secretKeys := StackConfig(t, stack, overrides)
	setConfigEnv(t, cfg, secretKeys)
}

func setConfigEnv(t testing.TB, cfg map[string]string, secretKeys []string) {
	t.Helper()
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	keys, err := json.Marshal(secretKeys)
	require.NoError(t, err)
	t.Setenv(pulumi.EnvConfig, string(js))
	t.Setenv(pulumi.EnvConfigSecretKeys, string(keys))
}

// MustRun runs a stack that must succeed.
func MustRun(t testing.TB, stack string, overrides map[string]string) Run {
	t.Helper()
	r := RunProgram(t, stack, overrides)
	require.NoError(t, r.Err)
	return r
}
