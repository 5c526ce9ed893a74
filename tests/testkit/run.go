package testkit

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

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
