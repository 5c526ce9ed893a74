package mocked

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"ecommerce-platform/components"
	"ecommerce-platform/tests/testkit"
)

// colorObjects are a color's objects whose content is its release: the Deployment (pod
// template and labels) and its two ConfigMaps.
func colorObjects(color string) map[string]string {
	return map[string]string{
		"frontend-" + color + "-deployment": testkit.Deployment,
		"frontend-" + color + "-config":     testkit.ConfigMap,
		"frontend-" + color + "-dashboard":  testkit.ConfigMap,
	}
}

// heldPaths is what Pulumi keeps from the state for each of a color's objects (nil: the
// update gives it what the program renders now).
func heldPaths(t *testing.T, r testkit.Run, color string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, typ := range colorObjects(color) {
		var found bool
		for _, res := range r.Resources {
			if res.Type == typ && res.Name == name {
				out[name], found = res.IgnoreChanges, true
			}
		}
		require.True(t, found, "%s %s not registered", typ, name)
	}
	return out
}

func held(color string) map[string][]string {
	return map[string][]string{
		"frontend-" + color + "-deployment": {"metadata.labels", "spec.template"},
		"frontend-" + color + "-config":     {"data"},
		"frontend-" + color + "-dashboard":  {"data"},
	}
}

func free(color string) map[string][]string {
	return map[string][]string{"frontend-" + color + "-deployment": nil, "frontend-" + color + "-config": nil, "frontend-" + color + "-dashboard": nil}
}

// release is what a color's recorded Deployment says it runs: the frontendReleases entry.
func release(t *testing.T, r testkit.Run, color string) map[string]any {
	t.Helper()
	d := testkit.DecodeAs[appsv1.Deployment](t, r.Object(t, testkit.Deployment, "frontend-"+color).Inputs)
	nginx := testkit.TypedContainer(t, d.Spec.Template.Spec, "nginx")
	return map[string]any{"content": d.Annotations[components.ReleaseContentAnnotation], "image": nginx.Image,
		"version": d.Labels["app.kubernetes.io/version"]}
}

// outputsAfter are the stack outputs an update left, as the next update reads them back.
func outputsAfter(t *testing.T, r testkit.Run, active string, overrides map[string]map[string]any) map[string]any {
	t.Helper()
	releases := map[string]any{"blue": release(t, r, "blue"), "green": release(t, r, "green")}
	for color, fields := range overrides {
		for k, v := range fields {
			releases[color].(map[string]any)[k] = v
		}
	}
	return map[string]any{components.ReleasesOutput: releases, components.LiveOutput: active, "activeColor": active}
}

// A color's release reaches it only while it is not live: a program upgrade (another release
// content than the live color runs) changes only the idle color; a switch holds the color it
// leaves (its release is the rollback target) and may release the color it moves to (the
// promotion check runs first); a rollback holds both; a release to the idle color by its own
// config changes only it; the live color's own config waits; a stack last updated before
// frontendReleases existed holds its live color.
func TestReleaseReachesOnlyTheIdleColor(t *testing.T) {
	first := testkit.MustRun(t, "prod", nil)
	assert.Equal(t, free("blue"), heldPaths(t, first, "blue"), "a first update creates both colors")
	assert.Equal(t, free("green"), heldPaths(t, first, "green"))
	current := release(t, first, "blue")["content"]
	require.NotEmpty(t, current)
	require.Equal(t, current, release(t, first, "green")["content"])
	oldRelease := map[string]map[string]any{"blue": {"content": "the previous program release"}, "green": {"content": "the previous program release"}}

	cases := []struct {
		name       string
		overrides  map[string]string
		previous   map[string]any
		blue, grn  map[string][]string
		blueRuns   any // the content blue runs after the update
		greenRuns  any
		greenImage string
	}{
		{name: "program upgrade while blue is live", previous: outputsAfter(t, first, "blue", oldRelease),
			blue: held("blue"), grn: free("green"), blueRuns: "the previous program release", greenRuns: current},
		{name: "switch to green after the upgrade", overrides: map[string]string{"activeColor": "green"},
			previous: outputsAfter(t, first, "blue", map[string]map[string]any{"blue": {"content": "the previous program release"}}),
			blue:     held("blue"), grn: free("green"), blueRuns: "the previous program release", greenRuns: current},
		{name: "roll back to blue", overrides: map[string]string{"activeColor": "blue"},
			previous: outputsAfter(t, first, "green", map[string]map[string]any{"blue": {"content": "the previous program release"}}),
			blue:     held("blue"), grn: held("green"), blueRuns: "the previous program release", greenRuns: current},
		{name: "switch to green with a release of it in one update", overrides: map[string]string{"activeColor": "green", "greenVersion": "9.9.9-broken"},
			previous: outputsAfter(t, first, "blue", nil), blue: held("blue"), grn: free("green"), blueRuns: current, greenRuns: current},
		{name: "release to idle green by its own config", overrides: map[string]string{"greenVersion": "1.1.0", "greenImage": "nginxinc/nginx-unprivileged:1.27.5-alpine"},
			previous: outputsAfter(t, first, "blue", nil), blue: held("blue"), grn: free("green"), blueRuns: current, greenRuns: current,
			greenImage: "nginxinc/nginx-unprivileged:1.27.5-alpine"},
		{name: "live blue's own config waits", overrides: map[string]string{"blueImage": "nginxinc/nginx-unprivileged:1.27.5-alpine"},
			previous: outputsAfter(t, first, "blue", nil), blue: held("blue"), grn: held("green"), blueRuns: current, greenRuns: current},
		{name: "stack last updated before frontendReleases", previous: map[string]any{"activeColor": "blue"},
			blue: held("blue"), grn: free("green"), blueRuns: "a release before frontendReleases", greenRuns: current},
		{name: "a no-op update holds both", previous: outputsAfter(t, first, "blue", nil),
			blue: held("blue"), grn: held("green"), blueRuns: current, greenRuns: current},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testkit.RunAfter(t, "prod", tc.overrides, tc.previous)
			assert.Equal(t, tc.blue, heldPaths(t, r, "blue"))
			assert.Equal(t, tc.grn, heldPaths(t, r, "green"))
			assert.Equal(t, tc.blueRuns, release(t, r, "blue")["content"])
			assert.Equal(t, tc.greenRuns, release(t, r, "green")["content"])
			if tc.greenImage != "" {
				assert.Equal(t, tc.greenImage, release(t, r, "green")["image"])
			}
			// Nothing else of the stack is held: only these six objects ever are.
			for _, res := range r.Resources {
				if len(res.IgnoreChanges) > 0 {
					assert.True(t, slices.ContainsFunc([]string{"blue", "green"}, func(c string) bool {
						_, ok := colorObjects(c)[res.Name]
						return ok
					}), "%s %s is held", res.Type, res.Name)
				}
			}
		})
	}
}
