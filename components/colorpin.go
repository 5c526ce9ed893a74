package components

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// ReleasesOutput is the stack output that records what each color runs after an update; the
// next update reads it back (priorReleases) to decide which color may change.
const ReleasesOutput = "frontendReleases"

// LiveOutput is the stack output naming the color production traffic reached after an update:
// the production Service's selector once it was updated. An update that fails before the
// Service moves (a failed promotion check) leaves this output and ReleasesOutput as they were.
const LiveOutput = "liveColor"

// RecoveredOutput is the stack output naming the archive the database was recovered from
// (databaseRecoverFrom), recorded once an update with it succeeded: the database-migrate Job
// wrote to the recovered database after the primary started, so the recovery is over. The
// next update reads it back and takes the primary's egress to object storage away.
const RecoveredOutput = "databaseRecoveredFrom"

// Prior is what the last update left: each color's release and the live color ("" before
// the first), and the archive a finished recovery read (RecoveredOutput; "" for none).
type Prior struct {
	Runs      map[string]ColorRelease
	Live      string
	Recovered string
}

// ColorRelease is what one color's pods run: the release content of the program and the
// tier's pod settings (Content, a hash), and the color's own image and version.
type ColorRelease struct {
	Content string `json:"content"`
	Image   string `json:"image"`
	Version string `json:"version"`
}

// releaseContent is a hash of everything of a color's pods that does not come from the
// color's own config: the program's Version, the frontend's embedded files and the tier's pod
// settings (rate limits, proxies, TLS, sizes, sidecar images).
func releaseContent(pod ColorPod) (string, error) {
	dashboard, err := assets.Files("dashboard")
	if err != nil {
		return "", err
	}
	settings, err := json.Marshal(pod)
	if err != nil {
		return "", fmt.Errorf("color pod settings: %w", err)
	}
	return kube.Checksum(Version, string(settings), assets.File("nginx.conf.tmpl"), assets.File("fluent-bit.conf"),
		assets.File("fluent-bit-parsers.conf"), kube.ChecksumOfData(dashboard)), nil
}

// ColorPlan is what an update does to each color: what it runs afterwards, and whether it is
// held (its Deployment's pod template and its ConfigMaps keep what they have, whatever the
// program renders now).
type ColorPlan struct {
	Runs map[string]ColorRelease
	Held map[string]bool
	Live string // the color live before the update, whose release is held
}

// planColors decides per color, from what each ran after the last update (prior; empty on the
// first), the color production traffic reached then (live) and what the program renders now
// (current):
//   - a color that never ran takes the current release;
//   - the live color is held: production traffic never sees a change before a switch (an
//     update that switches may change the color it switches to: the promotion check runs
//     against it before traffic moves);
//   - the other color takes the current release when its own image or version changed (a
//     release to the idle color) or when the current release content is not what the live
//     color runs (a new program release, or new tier settings, not yet live); otherwise it is
//     held: after a switch the old color keeps its release, the target of a rollback.
func planColors(live string, current, prior map[string]ColorRelease) ColorPlan {
	plan := ColorPlan{Runs: map[string]ColorRelease{}, Held: map[string]bool{}, Live: live}
	for _, color := range []string{Blue, Green} {
		was, ran := prior[color]
		now := current[color]
		newRelease := was.Image != now.Image || was.Version != now.Version || now.Content != prior[live].Content
		if ran && (color == live || !newRelease) {
			plan.Runs[color], plan.Held[color] = was, true
			continue
		}
		plan.Runs[color] = now
	}
	return plan
}

// priorReleases reads the stack's own frontendReleases output of its last update (nothing
// on the first update). Held colors need it as a plain value before anything is registered:
// resource options cannot wait for an Output. A stack last updated by a program older than
// this output (1.0.0) has an activeColor output only: its active color is held as it runs
// (the release its config names), so the first upgrade already leaves it alone.
func priorReleases(ctx *pulumi.Context, configured func(color string) ColorRelease) (Prior, error) {
	self, err := pulumi.NewStackReference(ctx, ctx.Organization()+"/"+ctx.Project()+"/"+ctx.Stack(), nil)
	if err != nil {
		return Prior{}, fmt.Errorf("read the stack's own outputs: %w", err)
	}
	details, err := self.GetOutputDetails(ReleasesOutput)
	if err != nil {
		return Prior{}, fmt.Errorf("read the stack's own %s output: %w", ReleasesOutput, err)
	}
	live, err := self.GetOutputDetails(LiveOutput)
	if err != nil {
		return Prior{}, fmt.Errorf("read the stack's own %s output: %w", LiveOutput, err)
	}
	recovered, err := self.GetOutputDetails(RecoveredOutput)
	if err != nil {
		return Prior{}, fmt.Errorf("read the stack's own %s output: %w", RecoveredOutput, err)
	}
	prior := Prior{Runs: map[string]ColorRelease{}}
	if color, ok := live.Value.(string); ok {
		prior.Live = color
	}
	if from, ok := recovered.Value.(string); ok {
		prior.Recovered = from
	}
	if details == nil || details.Value == nil {
		legacy, err := self.GetOutputDetails("activeColor")
		if err != nil {
			return Prior{}, fmt.Errorf("read the stack's own activeColor output: %w", err)
		}
		if color, ok := legacy.Value.(string); ok && (color == Blue || color == Green) {
			was := configured(color)
			was.Content = legacyContent
			prior.Runs[color], prior.Live = was, color
		}
		return prior, prior.check()
	}
	js, err := json.Marshal(details.Value)
	if err != nil {
		return Prior{}, fmt.Errorf("%s output: %w", ReleasesOutput, err)
	}
	if err := json.Unmarshal(js, &prior.Runs); err != nil {
		return Prior{}, fmt.Errorf("%s output %s: %w", ReleasesOutput, js, err)
	}
	if err := prior.check(); err != nil {
		return Prior{}, err
	}
	return prior, nil
}

// legacyContent marks the release of a stack last updated before frontendReleases existed.
const legacyContent = "a release before " + ReleasesOutput

// check refuses outputs this program never writes, all problems at once: they decide what
// each color runs and which one is held, so an edited state (the outputs are plain text in it)
// must not choose an image config would refuse, or free the live color (an unknown live color,
// or one without a recorded release, would hold neither color).
func (p Prior) check() error {
	var problems []string
	if p.Live != "" && !slices.Contains([]string{Blue, Green}, p.Live) {
		problems = append(problems, fmt.Sprintf("%s: %q is not a color; it is blue or green", LiveOutput, p.Live))
	}
	for _, color := range slices.Sorted(maps.Keys(p.Runs)) {
		r := p.Runs[color]
		if !slices.Contains([]string{Blue, Green}, color) {
			problems = append(problems, fmt.Sprintf("%s: names an unknown color %q", ReleasesOutput, color))
			continue
		}
		for _, problem := range config.ReleaseProblems(color, r.Image, r.Version) {
			problems = append(problems, ReleasesOutput+": "+problem)
		}
	}
	if _, ok := p.Runs[p.Live]; len(p.Runs) > 0 && p.Live != "" && !ok {
		problems = append(problems, fmt.Sprintf("%s: the live color %q has no release in %s, so neither color would be held", LiveOutput, p.Live, ReleasesOutput))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("the stack's own outputs of its last update are not what this program writes (%d problems); "+
		"was the state edited? Restore it from a backup or `pulumi stack export`/`import` with the outputs corrected:\n  - %s",
		len(problems), strings.Join(problems, "\n  - "))
}

// releasesOutput is the frontendReleases output: per color, what it runs, resolved only once
// live (the production Service's selected color) is.
func releasesOutput(runs map[string]ColorRelease, live pulumi.StringOutput) pulumi.MapOutput {
	return live.ApplyT(func(string) map[string]any {
		out := map[string]any{}
		for color, r := range runs {
			out[color] = map[string]any{"content": r.Content, "image": r.Image, "version": r.Version}
		}
		return out
	}).(pulumi.MapOutput)
}
