package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// RenderOptions say which stack to render and where the YAML goes.
type RenderOptions struct {
	Options
	OutDir string
	// Config sets plain values on the throwaway copy only, e.g. the off-site endpoint and
	// bucket prod requires, which a stack file cannot know.
	Config map[string]string
}

// Render writes every object of a stack as YAML into OutDir through the Kubernetes
// provider's renderYamlToDirectory: no cluster is contacted. It works on a copy of the
// project files with a throwaway state, so the real stack's state is untouched. Secrets the
// stack lacks are generated, issued ones (object storage keys) too; every Secret is written in plain text (the provider's caveat).
func Render(ctx context.Context, o RenderOptions) ([]string, error) {
	work, err := os.MkdirTemp("", "ecommerce-render-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	for _, name := range []string{"Pulumi.yaml", "Pulumi." + o.Stack + ".yaml"} {
		b, err := os.ReadFile(filepath.Join(o.ProjectDir, name))
		if err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		if err := os.WriteFile(filepath.Join(work, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	// The copied stack file's secrets are encrypted with the real stack's passphrase.
	if o.StateDir == "" {
		o.StateDir = filepath.Join(o.ProjectDir, ".pulumi-local", "state")
	}
	passphrase, err := resolvePassphrase(o.Passphrase, filepath.Join(filepath.Dir(o.StateDir), "passphrase"))
	if err != nil {
		return nil, err
	}
	o.Passphrase = passphrase
	out, err := filepath.Abs(o.OutDir)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	o.ProjectDir = work
	o.StateDir = filepath.Join(work, ".state")
	s, err := Open(ctx, o.Options)
	if err != nil {
		return nil, err
	}
	if _, err := s.generateSecrets(ctx, true); err != nil {
		return nil, err
	}
	for key, value := range o.Config {
		if err := s.SetConfig(ctx, key, value); err != nil {
			return nil, err
		}
	}
	if err := s.SetConfig(ctx, "kubernetes:renderYamlToDirectory", out); err != nil {
		return nil, err
	}
	if _, _, err := s.Up(ctx); err != nil {
		return nil, fmt.Errorf("render %s: %w", o.Stack, err)
	}
	var files []string
	err = filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	return files, err
}
