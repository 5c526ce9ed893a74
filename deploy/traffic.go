package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// Traffic reads, with kubectl, which pods the production Services select and serve: what a
// switch is for. It checks the cluster itself, not Pulumi's idea of it.
type Traffic struct {
	Kubectl    string // kubectl binary; "" finds it in ToolsDir/bin or on PATH
	Kubeconfig string
	Namespace  string
}

// NewTraffic reads the stack's namespace from its config and finds kubectl.
func (s *Stack) NewTraffic(ctx context.Context, o Options) (Traffic, error) {
	ns, err := s.ConfigValue(ctx, "namespace")
	if err != nil {
		return Traffic{}, err
	}
	kubectl := "kubectl"
	if o.ToolsDir != "" {
		kubectl = filepath.Join(o.ToolsDir, "bin", "kubectl")
	}
	return Traffic{Kubectl: kubectl, Kubeconfig: o.Kubeconfig, Namespace: ns}, nil
}

func (tr Traffic) kubectl(ctx context.Context, args ...string) ([]byte, error) {
	full := []string{"--namespace", tr.Namespace}
	if tr.Kubeconfig != "" {
		full = append(full, "--kubeconfig", tr.Kubeconfig)
	}
	cmd := exec.CommandContext(ctx, tr.Kubectl, append(full, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Selector is a Service's selector, as "key=value,..." sorted.
func (tr Traffic) Selector(ctx context.Context, service string) (string, error) {
	out, err := tr.kubectl(ctx, "get", "service", service, "-o", "jsonpath={.spec.selector}")
	if err != nil {
		return "", err
	}
	var sel map[string]string
	if err := json.Unmarshal(out, &sel); err != nil {
		return "", fmt.Errorf("selector of %s: %w", service, err)
	}
	var parts []string
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ","), nil
}

// ServedPods are the pods a Service's EndpointSlices hold as ready.
func (tr Traffic) ServedPods(ctx context.Context, service string) ([]string, error) {
	out, err := tr.kubectl(ctx, "get", "endpointslices", "-l", "kubernetes.io/service-name="+service, "-o", "json")
	if err != nil {
		return nil, err
	}
	var slices discoveryv1.EndpointSliceList
	if err := json.Unmarshal(out, &slices); err != nil {
		return nil, fmt.Errorf("endpoint slices of %s: %w", service, err)
	}
	return ReadyPods(slices), nil
}

// ReadyPods are the names of the pods that EndpointSlices hold as ready, sorted.
func ReadyPods(slices discoveryv1.EndpointSliceList) []string {
	var pods []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready && e.TargetRef != nil {
				pods = append(pods, e.TargetRef.Name)
			}
		}
	}
	sort.Strings(pods)
	return pods
}

// WaitServedOnlyBy waits until a Service serves only pods whose names start with prefix and
// returns the time since start.
func (tr Traffic) WaitServedOnlyBy(ctx context.Context, service, prefix string, start time.Time, timeout time.Duration) (time.Duration, error) {
	for {
		pods, err := tr.ServedPods(ctx, service)
		if err != nil {
			return 0, err
		}
		only := len(pods) > 0
		for _, p := range pods {
			only = only && strings.HasPrefix(p, prefix)
		}
		if only {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("%s still serves %v after %s, not only %s*", service, pods, timeout, prefix)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PromotionCheckResult is what the promotion check's pod said: its termination message (the
// failing check) or its phase.
func (tr Traffic) PromotionCheckResult(ctx context.Context) string {
	out, err := tr.kubectl(ctx, "get", "pods", "-l", "app.kubernetes.io/component=promotion-check", "-o",
		`jsonpath={range .items[*]}{.status.phase}{" "}{.status.containerStatuses[0].state.terminated.message}{"\n"}{end}`)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
