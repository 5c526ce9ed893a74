package components

import (
	"fmt"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// gateJob is a Job that other resources wait for (the credentials sync, the promotion check):
// it runs once per set of inputs, which its pod template carries (a change replaces it, so it
// runs again), a failed run runs again on the next `pulumi up` (pulumi.com/replaceUnready), and
// its pods may reach one set of pods on one port, nothing else.
type gateJob struct {
	JobResource, PolicyResource string // Pulumi names
	Name                        string // Kubernetes name of the Job and its NetworkPolicy
	Namespace                   pulumi.StringInput
	Identity                    Identity // of its pods
	Labels                      pulumi.StringMap
	Inputs                      pulumi.StringMap // pod template annotations: what it runs for
	Pod                         podOptions       // RestartPolicy is set to Never
	BackoffLimit, Deadline      int
	Reaches                     pulumi.StringMap // the pods it may call
	Port                        int
}

func newGateJob(ctx *pulumi.Context, g gateJob, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	jobMeta := workloadMeta(g.Name, g.Namespace, g.Labels)
	jobMeta.Annotations = pulumi.StringMap{"pulumi.com/replaceUnready": pulumi.String("true"), "kube-score/ignore": kubeScoreIgnore["kube-score/ignore"]}
	g.Pod.RestartPolicy = "Never"
	job, err := batchv1.NewJob(ctx, g.JobResource, &batchv1.JobArgs{
		Metadata: jobMeta,
		Spec: batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(g.BackoffLimit),
			ActiveDeadlineSeconds: pulumi.Int(g.Deadline),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: g.Labels, Annotations: g.Inputs},
				Spec:     g.Pod.spec(),
			},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s job: %w", g.Name, err)
	}
	if err := newAllowPolicy(ctx, g.Namespace, allowPolicy{
		Resource: g.PolicyResource, Name: g.Name, Labels: g.Labels, Pods: g.Identity.Selector(),
		Egress: networkingv1.NetworkPolicyEgressRuleArray{egressRule(g.Port, fromPods(g.Reaches))},
	}, opts...); err != nil {
		return nil, fmt.Errorf("%s network policy: %w", g.Name, err)
	}
	return job, nil
}

// cronJob is a scheduled Job of the database tier (the nightly backup, the release of unpaid
// orders): one run at a time (a run still going when the next is due makes it wait), a run
// missed while the controller was down starts within StartingDeadline seconds, three runs of
// each outcome are kept for inspection, and its pods may reach one set of pods on one port,
// nothing else.
type cronJob struct {
	JobResource, PolicyResource string // Pulumi names
	Name                        string // Kubernetes name of the CronJob and its NetworkPolicy
	Namespace                   pulumi.StringInput
	Identity                    Identity // of its pods
	Labels                      pulumi.StringMap
	Schedule                    string
	StartingDeadline            int              // seconds
	Pod                         podOptions       // RestartPolicy is set to OnFailure
	BackoffLimit, Deadline      int              // retries of a run; seconds a run may take
	Reaches                     pulumi.StringMap // the pods it may call
	Port                        int
}

func newCronJob(ctx *pulumi.Context, c cronJob, opts ...pulumi.ResourceOption) error {
	c.Pod.RestartPolicy = "OnFailure"
	if _, err := batchv1.NewCronJob(ctx, c.JobResource, &batchv1.CronJobArgs{
		Metadata: workloadMeta(c.Name, c.Namespace, c.Labels),
		Spec: batchv1.CronJobSpecArgs{
			Schedule: pulumi.String(c.Schedule),
			// Missed runs never pile up: past the deadline a run waits for the next schedule
			// (and never counts towards the 100 missed runs after which a CronJob stops).
			StartingDeadlineSeconds:    pulumi.Int(c.StartingDeadline),
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			SuccessfulJobsHistoryLimit: pulumi.Int(3),
			FailedJobsHistoryLimit:     pulumi.Int(3),
			JobTemplate: batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: c.Labels},
				Spec: batchv1.JobSpecArgs{
					BackoffLimit:          pulumi.Int(c.BackoffLimit),
					ActiveDeadlineSeconds: pulumi.Int(c.Deadline),
					Template: corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: c.Labels},
						Spec:     c.Pod.spec(),
					},
				},
			},
		},
	}, opts...); err != nil {
		return fmt.Errorf("%s cron job: %w", c.Name, err)
	}
	if err := newAllowPolicy(ctx, c.Namespace, allowPolicy{
		Resource: c.PolicyResource, Name: c.Name, Labels: c.Labels, Pods: c.Identity.Selector(),
		Egress: networkingv1.NetworkPolicyEgressRuleArray{egressRule(c.Port, fromPods(c.Reaches))},
	}, opts...); err != nil {
		return fmt.Errorf("%s network policy: %w", c.Name, err)
	}
	return nil
}
