package components

import (
	"fmt"
	"strconv"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"ecommerce-platform/components/assets"
	"ecommerce-platform/components/config"
	"ecommerce-platform/components/kube"
)

// Annotations of the promotion check's pod template: what it checks. A change of any of them
// (another color becomes active, or the active color gets another image or version) changes
// the template, which replaces the Job: it runs again.
const (
	promotionColorKey   = "ecommerce-platform/expected-color"
	promotionVersionKey = "ecommerce-platform/expected-version"
	promotionImageKey   = "ecommerce-platform/expected-image"
)

// promotionCheck is what the promotion check Job needs.
type promotionCheck struct {
	Resource       string
	Namespace      pulumi.StringInput
	Identity       kube.Identity
	Security       kube.PodSecurity
	Image          string // sh and curl
	TimeoutSeconds int
	Color          string             // the color about to be active
	Release        config.Release     // its image and version
	PreviewURL     pulumi.StringInput // http://<the color's preview Service>:<port>
	ColorPods      pulumi.StringMap   // the pods its preview Service selects
}

// newPromotionCheck runs promotion-check.sh once per active color, image and version, against
// the color's preview Service, before the production Services may select it (they depend on
// the Job). A failed check fails `pulumi up` and leaves them where they are; it runs again on
// the next `up` (pulumi.com/replaceUnready). The Job has its own ServiceAccount (no token)
// and may reach only the active color's pods on the nginx port.
func newPromotionCheck(ctx *pulumi.Context, p promotionCheck, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	labels := p.Identity.TierLabels()
	sa, err := kube.NewServiceAccount(ctx, p.Resource+"-serviceaccount", p.Identity.Object("promotion-check"), p.Namespace, labels, opts...)
	if err != nil {
		return nil, fmt.Errorf("promotion check service account: %w", err)
	}
	script, err := corev1.NewConfigMap(ctx, p.Resource+"-script", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(p.Identity.Object("promotion-check"), p.Namespace, labels),
		Data:     pulumi.StringMap{"promotion-check.sh": pulumi.String(assets.PromotionCheckScript())},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("promotion check script: %w", err)
	}
	return kube.NewGateJob(ctx, kube.GateJob{
		Inputs: pulumi.StringMap{
			promotionColorKey: pulumi.String(p.Color), promotionVersionKey: pulumi.String(p.Release.Version),
			promotionImageKey: pulumi.String(p.Release.Image),
		},
		JobRun: kube.JobRun{
			JobResource: p.Resource + "-job", PolicyResource: p.Resource + "-netpol", Name: p.Identity.Object("promotion-check"),
			Namespace: p.Namespace, Identity: p.Identity, Labels: labels,
			Pod: kube.PodOptions{
				ServiceAccount: sa.Metadata.Name().Elem(),
				Security:       p.Security,
				Containers:     corev1.ContainerArray{promotionCheckContainer(p)},
				Volumes:        corev1.VolumeArray{kube.ConfigMapVolume("script", script.Metadata.Name().Elem())},
			},
			BackoffLimit: 0, Deadline: p.TimeoutSeconds,
			Reaches: p.ColorPods, Port: FrontendPort,
		},
	}, opts...)
}

// promotionCheckContainer runs promotion-check.sh (curl) against the color's preview URL,
// expecting its color and version.
func promotionCheckContainer(p promotionCheck) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:    pulumi.String("promotion-check"),
		Image:   pulumi.String(p.Image),
		Command: pulumi.ToStringArray([]string{"sh", "/scripts/promotion-check.sh"}),
		Env: corev1.EnvVarArray{
			corev1.EnvVarArgs{Name: pulumi.String("TARGET"), Value: p.PreviewURL},
			kube.Env("EXPECTED_COLOR", p.Color),
			kube.Env("EXPECTED_VERSION", p.Release.Version),
			kube.Env("WAIT_SECONDS", strconv.Itoa(p.TimeoutSeconds/2)),
		},
		VolumeMounts:             corev1.VolumeMountArray{kube.FileMount("script", "/scripts/promotion-check.sh", "promotion-check.sh")},
		Resources:                kube.Requirements(kube.InitResources),
		SecurityContext:          p.Security.ContainerSecurityContext(),
		TerminationMessagePolicy: pulumi.String("FallbackToLogsOnError"),
	}
}
