// Command platform deploys a stack of ecommerce-platform with the Pulumi Automation API,
// for machines without Pulumi's Go language host (with one, `pulumi up` does the same).
//
//	platform [flags] up|preview|destroy|outputs
//	platform [flags] switch blue|green
//	platform [flags] render <dir>
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"ecommerce-platform/components"
	"ecommerce-platform/deploy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "platform:", err)
		os.Exit(1)
	}
}

func run() error {
	o := deploy.Options{Progress: os.Stdout}
	flag.StringVar(&o.Stack, "stack", "dev", "stack to act on")
	flag.StringVar(&o.ProjectDir, "project", ".", "folder with Pulumi.yaml and the stack files")
	flag.StringVar(&o.ToolsDir, "tools", "", "folder whose bin/ has pulumi and pulumi-resource-kubernetes (empty: PATH)")
	flag.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig of the target cluster (empty: KUBECONFIG or ~/.kube/config)")
	flag.StringVar(&o.StateDir, "state", "", "local state folder (default <project>/.pulumi-local/state)")
	generate := flag.Bool("generate-secrets", false, "generate missing secrets (for local dev stacks)")
	renderConfig := map[string]string{}
	flag.Func("config", "render only: key=value set on the throwaway copy (repeatable), e.g. prod's databaseOffsiteEndpoint", func(kv string) error {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		renderConfig[key] = value
		return nil
	})
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: platform [flags] up|preview|destroy|outputs|rollback | switch blue|green | render <dir>")
		flag.PrintDefaults()
	}
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		flag.Usage()
		return fmt.Errorf("no command")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	defer func() { fmt.Printf("platform %s: %.1fs\n", args[0], time.Since(start).Seconds()) }()

	if args[0] == "render" {
		return render(ctx, o, args, renderConfig)
	}

	s, err := deploy.Open(ctx, o)
	if err != nil {
		return err
	}
	if err := generateSecrets(ctx, s, o.Stack, *generate); err != nil {
		return err
	}
	return command(ctx, s, o, args, start)
}

// generateSecrets sets the stack's missing required secrets to random values, when asked.
func generateSecrets(ctx context.Context, s *deploy.Stack, stack string, asked bool) error {
	if asked {
		keys, err := s.EnsureSecrets(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			fmt.Printf("generated secret %s for stack %s\n", k, stack)
		}
	}
	return nil
}

// command runs one of the driver's commands on an open stack.
func command(ctx context.Context, s *deploy.Stack, o deploy.Options, args []string, start time.Time) error {
	switch args[0] {
	case "up":
		changes, outputs, err := s.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("%d changes\n", len(changes))
		return printOutputs(outputs)
	case "preview":
		changes, err := s.Preview(ctx)
		if err != nil {
			return err
		}
		for _, c := range changes {
			fmt.Println(c)
		}
		fmt.Printf("%d changes\n", len(changes))
		return nil
	case "switch":
		if len(args) != 2 {
			return fmt.Errorf("switch needs a color: blue or green")
		}
		return switchTraffic(ctx, s, o, args[1], start)
	case "rollback":
		active, err := s.ConfigValue(ctx, "activeColor")
		if err != nil {
			return err
		}
		other := components.Blue
		if active == components.Blue {
			other = components.Green
		}
		return switchTraffic(ctx, s, o, other, start)
	case "destroy":
		return s.Destroy(ctx)
	case "outputs":
		outputs, err := s.Outputs(ctx)
		if err != nil {
			return err
		}
		return printOutputs(outputs)
	}
	flag.Usage()
	return fmt.Errorf("unknown command %q", args[0])
}

// render writes every object of the stack as YAML into a folder, through the provider.
func render(ctx context.Context, o deploy.Options, args []string, config map[string]string) error {
	if len(args) != 2 {
		return fmt.Errorf("render needs an output folder")
	}
	files, err := deploy.Render(ctx, deploy.RenderOptions{Options: o, OutDir: args[1], Config: config})
	if err != nil {
		return err
	}
	fmt.Printf("rendered %d manifests into %s (Secrets are in plain text there: do not commit them)\n", len(files), args[1])
	return nil
}

// switchTraffic is `pulumi config set activeColor <color> && pulumi up`, reported: the
// production selector before and after, the promotion check's result, and how long until
// frontend-service's EndpointSlices held only the new color's pods.
func switchTraffic(ctx context.Context, s *deploy.Stack, o deploy.Options, color string, start time.Time) error {
	traffic, err := s.NewTraffic(ctx, o)
	if err != nil {
		return err
	}
	before, err := traffic.Selector(ctx, "frontend-service")
	if err != nil {
		return err
	}
	fmt.Printf("frontend-service selects: %s\n", before)
	changes, switchErr := s.Switch(ctx, color)
	for _, c := range changes {
		fmt.Println(c)
	}
	fmt.Printf("promotion check: %s\n", traffic.PromotionCheckResult(ctx))
	after, err := traffic.Selector(ctx, "frontend-service")
	if err != nil {
		return err
	}
	fmt.Printf("frontend-service selects: %s\n", after)
	if switchErr != nil {
		return fmt.Errorf("switch to %s failed; production traffic stays where it was: %w", color, switchErr)
	}
	moved, err := traffic.WaitServedOnlyBy(ctx, "frontend-service", "frontend-"+color+"-", start, 2*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("traffic moved to %s: frontend-service serves only its pods %.1fs after the command started\n", color, moved.Seconds())
	return nil
}

func printOutputs(outputs auto.OutputMap) error {
	plain := map[string]any{}
	for k, v := range outputs {
		if v.Secret {
			plain[k] = "[secret]"
			continue
		}
		plain[k] = v.Value
	}
	b, err := json.MarshalIndent(plain, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
