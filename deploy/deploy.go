// Package deploy drives components.Program with the Pulumi Automation API: an inline
// program over the project's own Pulumi.yaml and stack files, a local file backend and
// passphrase secrets. It is what `make up`, `cmd/platform` and the integration tests use on
// machines without Pulumi's Go language host; with a normal Pulumi install `pulumi up` does
// the same.
package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components"
	"ecommerce-platform/components/config"
)

// ProjectName is the project's name in Pulumi.yaml.
const ProjectName = config.ProjectName

// Options say where the project, its state and its tools are.
type Options struct {
	ProjectDir string    // holds Pulumi.yaml and Pulumi.<stack>.yaml
	Stack      string    // dev, prod, ...
	StateDir   string    // file backend; default <ProjectDir>/.pulumi-local/state
	ToolsDir   string    // folder with bin/pulumi and bin/pulumi-resource-kubernetes; "" uses PATH
	Kubeconfig string    // "" leaves the provider's defaults (KUBECONFIG, ~/.kube/config)
	Progress   io.Writer // Pulumi's progress output; nil discards it
	// Passphrase of the stack's secrets; "" reads PULUMI_CONFIG_PASSPHRASE or a generated
	// one kept in <StateDir>/../passphrase.
	Passphrase string
	// Program defaults to components.Program.
	Program pulumi.RunFunc
}

// Stack is one stack of the project, ready to preview, update or destroy.
type Stack struct {
	stack    auto.Stack
	progress io.Writer
}

// Open selects or creates the stack, running the program inline over the project's files.
func Open(ctx context.Context, o Options) (*Stack, error) {
	if o.ProjectDir == "" || o.Stack == "" {
		return nil, errors.New("deploy: ProjectDir and Stack are required")
	}
	dir, err := filepath.Abs(o.ProjectDir)
	if err != nil {
		return nil, err
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(dir, ".pulumi-local", "state")
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	passphrase, err := resolvePassphrase(o.Passphrase, filepath.Join(filepath.Dir(o.StateDir), "passphrase"))
	if err != nil {
		return nil, err
	}
	home := filepath.Join(filepath.Dir(o.StateDir), "home")
	env := map[string]string{
		"PULUMI_BACKEND_URL":       "file://" + o.StateDir,
		"PULUMI_CONFIG_PASSPHRASE": passphrase,
		"PULUMI_SKIP_UPDATE_CHECK": "1",
	}
	if o.Kubeconfig != "" {
		env["KUBECONFIG"] = o.Kubeconfig
	}
	opts := []auto.LocalWorkspaceOption{
		auto.WorkDir(dir),
		auto.PulumiHome(home),
		auto.SecretsProvider("passphrase"),
		auto.EnvVars(env),
	}
	if o.ToolsDir != "" {
		bin := filepath.Join(o.ToolsDir, "bin")
		// The engine finds the Kubernetes provider plugin on PATH.
		env["PATH"] = bin + string(os.PathListSeparator) + os.Getenv("PATH")
		cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: o.ToolsDir, SkipVersionCheck: true})
		if err != nil {
			return nil, fmt.Errorf("pulumi CLI in %s: %w", bin, err)
		}
		opts = append(opts, auto.Pulumi(cmd))
	}
	program := o.Program
	if program == nil {
		program = components.Program
	}
	s, err := auto.UpsertStackInlineSource(ctx, o.Stack, ProjectName, program, opts...)
	if err != nil {
		return nil, fmt.Errorf("open stack %s: %w", o.Stack, err)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	return &Stack{stack: s, progress: progress}, nil
}

// resolvePassphrase prefers an explicit one, then the environment, then a file it creates.
func resolvePassphrase(explicit, file string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if env := os.Getenv("PULUMI_CONFIG_PASSPHRASE"); env != "" {
		return env, nil
	}
	if b, err := os.ReadFile(file); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	p, err := randomSecret(32)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("passphrase folder: %w", err)
	}
	if err := os.WriteFile(file, []byte(p+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write passphrase: %w", err)
	}
	return p, nil
}

func randomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// EnsureSecrets generates every required secret the stack does not have yet, stored with
// `pulumi config set --secret` semantics. It returns the keys it generated. Meant for local
// dev stacks; production secrets are set by their owners.
func (s *Stack) EnsureSecrets(ctx context.Context) ([]string, error) {
	return s.generateSecrets(ctx, false)
}

// generateSecrets generates the missing secrets, issued ones too when asked (a render, whose
// Secrets are throwaway text).
func (s *Stack) generateSecrets(ctx context.Context, issued bool) ([]string, error) {
	var generated []string
	for _, key := range config.Schema() {
		if !key.Secret || (key.Issued && !issued) {
			continue
		}
		if v, err := s.stack.GetConfig(ctx, key.Key); err == nil && v.Value != "" {
			continue
		}
		value, err := randomSecret(33)
		if err != nil {
			return nil, err
		}
		if err := s.stack.SetConfig(ctx, key.Key, auto.ConfigValue{Value: value, Secret: true}); err != nil {
			return nil, fmt.Errorf("set secret %s: %w", key.Key, err)
		}
		generated = append(generated, key.Key)
	}
	return generated, nil
}

// SetSecret is `pulumi config set --secret key value`.
func (s *Stack) SetSecret(ctx context.Context, key, value string) error {
	if err := s.stack.SetConfig(ctx, key, auto.ConfigValue{Value: value, Secret: true}); err != nil {
		return fmt.Errorf("set secret %s: %w", key, err)
	}
	return nil
}

// SetConfig is `pulumi config set key value`.
func (s *Stack) SetConfig(ctx context.Context, key, value string) error {
	if err := s.stack.SetConfig(ctx, key, auto.ConfigValue{Value: value}); err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// ConfigValue is a plain config value of the stack, or its default.
func (s *Stack) ConfigValue(ctx context.Context, key string) (string, error) {
	if v, err := s.stack.GetConfig(ctx, key); err == nil {
		return v.Value, nil
	}
	for _, k := range config.Schema() {
		if k.Key == key {
			return k.Default, nil
		}
	}
	return "", fmt.Errorf("no config key %q", key)
}

// Change is one step a preview or an update plans for one resource.
type Change struct {
	Op   string // create, update, replace, delete, ...
	Type string
	Name string // Pulumi name (the last part of the URN)
}

// String is the change as the integration tests and the driver print it: "op type name".
func (c Change) String() string { return c.Op + " " + c.Type + " " + c.Name }

// recordChanges runs an engine operation with an event stream and returns the steps it
// planned or took for each resource ("same" steps and the stack itself left out, and the
// program's read of its own outputs, which changes nothing: components.ReleasesOutput).
func recordChanges(op func(chan<- events.EngineEvent) error) ([]Change, error) {
	ch := make(chan events.EngineEvent)
	var changes []Change
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range ch {
			if e.ResourcePreEvent == nil {
				continue
			}
			m := e.ResourcePreEvent.Metadata
			if string(m.Op) == "same" || m.Type == "pulumi:pulumi:Stack" ||
				(string(m.Op) == "read" && m.Type == "pulumi:pulumi:StackReference") {
				continue
			}
			urn := string(m.URN)
			changes = append(changes, Change{Op: string(m.Op), Type: m.Type, Name: urn[strings.LastIndex(urn, "::")+2:]})
		}
	}()
	err := op(ch) // the Automation API closes the channel when the operation ends...
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// ...except when it failed before the engine started: then nothing closes it, and
		// waiting would hide the error forever.
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].String() < changes[j].String() })
	return changes, err
}

// Preview is `pulumi preview`: what an update would change.
func (s *Stack) Preview(ctx context.Context) ([]Change, error) {
	changes, err := recordChanges(func(ch chan<- events.EngineEvent) error {
		_, err := s.stack.Preview(ctx, optpreview.EventStreams(ch), optpreview.ProgressStreams(s.progress))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	return changes, nil
}

// Up is `pulumi up`; it returns the changes it made and the stack's outputs.
func (s *Stack) Up(ctx context.Context) ([]Change, auto.OutputMap, error) {
	var outputs auto.OutputMap
	changes, err := recordChanges(func(ch chan<- events.EngineEvent) error {
		res, err := s.stack.Up(ctx, optup.EventStreams(ch), optup.ProgressStreams(s.progress))
		outputs = res.Outputs
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("up: %w", err)
	}
	return changes, outputs, nil
}

// Switch points production traffic at a color: `pulumi config set activeColor <color>`
// followed by `pulumi up`.
func (s *Stack) Switch(ctx context.Context, color string) ([]Change, error) {
	if color != components.Blue && color != components.Green {
		return nil, fmt.Errorf("switch: color %q is not allowed; use blue or green", color)
	}
	if err := s.SetConfig(ctx, "activeColor", color); err != nil {
		return nil, err
	}
	changes, _, err := s.Up(ctx)
	return changes, err
}

// Destroy is `pulumi destroy`. It fails, deleting nothing, while a protected resource (the
// prod database) is in the stack.
func (s *Stack) Destroy(ctx context.Context) error {
	if _, err := s.stack.Destroy(ctx, optdestroy.ProgressStreams(s.progress)); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	return nil
}

// Outputs are the stack's outputs after the last update.
func (s *Stack) Outputs(ctx context.Context) (auto.OutputMap, error) {
	return s.stack.Outputs(ctx)
}

// Remove deletes the stack's (empty) state and its generated local files.
func (s *Stack) Remove(ctx context.Context) error {
	return s.stack.Workspace().RemoveStack(ctx, s.stack.Name())
}
