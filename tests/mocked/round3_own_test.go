package mocked

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"ecommerce-platform/components"
	"ecommerce-platform/tests/testkit"
)

// Own attack pass (issue 27): the stack's own outputs decide what each frontend color runs and
// which one is held, and they were taken as they came. Outputs are plain text in the state, so
// whoever could write the state (not read its secrets) chose the live color's fate and the
// image a color runs: an unknown liveColor, or one without a recorded release, held neither
// color (the live color took the new release at once, before any switch or promotion check),
// and a release's image or version reached the Deployment (created again: after a lost
// Deployment or `pulumi state delete`) and the promotion check unchecked, an image config
// refuses included. Now the outputs are checked as strictly as config, every problem at once,
// before anything is registered.
func TestAttackRound3OwnCraftedOutputsAreRefused(t *testing.T) {
	first := testkit.MustRun(t, "prod", nil)
	crafted := func(live string, overrides map[string]map[string]any) map[string]any {
		out := outputsAfter(t, first, "blue", overrides)
		out[components.LiveOutput] = live
		return out
	}
	onlyBlue := crafted("green", nil)
	delete(onlyBlue[components.ReleasesOutput].(map[string]any), "green")
	for _, tc := range []struct {
		name     string
		previous map[string]any
		want     []string
	}{
		{"a live color that is no color", crafted("purple", nil),
			[]string{`liveColor: "purple" is not a color; it is blue or green`}},
		{"a live color without a release", onlyBlue,
			[]string{`liveColor: the live color "green" has no release in frontendReleases, so neither color would be held`}},
		{"an image config refuses", crafted("blue", map[string]map[string]any{"blue": {"image": "evil.example/nginx:latest"}}),
			[]string{`frontendReleases: blue image: "evil.example/nginx:latest" is not allowed; use a pinned tag; latest moves under you`}},
		{"every problem at once", crafted("blue", map[string]map[string]any{"green": {"image": "evil.example/nginx", "version": "1.0 $(id)"}}),
			[]string{`(2 problems)`, `frontendReleases: green image: "evil.example/nginx" is not allowed`,
				`frontendReleases: green version: "1.0 $(id)" is not allowed; use a label-safe version`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testkit.TryRunAfter(t, "prod", nil, tc.previous)
			if !assert.Error(t, r.Err) {
				d := testkit.TypedPod(t, r.Object(t, testkit.Deployment, "frontend-blue"))
				t.Logf("accepted: blue held %v, runs %s", heldPaths(t, r, "blue"), testkit.TypedContainer(t, d.Spec, "nginx").Image)
				return
			}
			assert.Contains(t, r.Err.Error(), "the stack's own outputs of its last update are not what this program writes")
			for _, w := range tc.want {
				assert.Contains(t, r.Err.Error(), w)
			}
			assert.Empty(t, r.Kubernetes(), "nothing is registered")
		})
	}
	assert.Equal(t, held("blue"), heldPaths(t, testkit.RunAfter(t, "prod", nil, crafted("blue", nil)), "blue"), "the outputs as written pass")
}

// Own attack pass: the migrator's password of a run is valid until the Job's deadline only
// (bootstrap.sql's VALID UNTIL, from MIGRATOR_VALID_SECONDS), so a run that fails leaves no
// lasting login (TestAttackRound3OwnMigratorPasswordDiesWithTheRun runs it on PostgreSQL).
func TestAttackRound3OwnMigratorPasswordEndsWithTheJob(t *testing.T) {
	r := testkit.MustRun(t, "prod", nil)
	job := testkit.DecodeAs[batchv1.Job](t, r.Object(t, testkit.Job, "database-migrate").Inputs)
	require.NotNil(t, job.Spec.ActiveDeadlineSeconds)
	bootstrap := testkit.TypedContainer(t, job.Spec.Template.Spec, "bootstrap")
	assert.Equal(t, strconv.FormatInt(*job.Spec.ActiveDeadlineSeconds, 10), testkit.EnvOf(bootstrap)["MIGRATOR_VALID_SECONDS"])
}

// Own attack pass: databaseSeedData ("dev only" in its description, nothing more) loaded the
// demo accounts, whose passwords the README publishes, into any new shop, a published one
// included: anyone could sign in as demo@example.com. Now it is refused on a stack published to
// the internet (a LoadBalancer or an Ingress), naming why, with every other problem.
func TestAttackRound3OwnDemoAccountsNeverFaceTheInternet(t *testing.T) {
	for name, tc := range map[string]struct {
		overrides map[string]string
		want      string
	}{
		"prod with the demo data": {map[string]string{"databaseSeedData": "true"}, "(frontendServiceType LoadBalancer)"},
		"dev behind an Ingress": {map[string]string{"ingressEnabled": "true", "ingressHost": "shop.example.com", "trustedProxies": "10.0.0.0/16"},
			"(ingressEnabled)"},
	} {
		t.Run(name, func(t *testing.T) {
			stack := "prod"
			if _, ok := tc.overrides["ingressEnabled"]; ok {
				stack = "dev"
			}
			r := testkit.RunProgram(t, stack, tc.overrides)
			require.Error(t, r.Err)
			assert.Contains(t, r.Err.Error(), "databaseSeedData: true loads demo accounts whose passwords are published (README: demo@example.com / demo-password) into a shop reachable from the internet "+tc.want)
			assert.Empty(t, r.Kubernetes())
		})
	}
	testkit.MustRun(t, "dev", nil) // ClusterIP and node ports from private ranges: the demo shop
}
